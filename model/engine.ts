import type { Logger } from '../common/logger.js';
import { Admission } from './admission.js';
import { loadNodeLlamaCpp, type ChatHistoryItem, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type NodeLlamaCpp } from './runtime.js';

export interface EngineOptions {
  modelPath: string;
  /** CPU threads per evaluation. 1 is the safe default on a shared machine: llama.cpp's
   *  threads spin at barriers, and on an oversubscribed CPU two threads ran ~20× slower. */
  threads: number;
  /** Requests generated at once (one context sequence each). */
  concurrency: number;
  /** Requests waiting for a sequence beyond `concurrency`; more are refused (429). */
  queueLimit: number;
  /** Tokens per sequence (prompt + answer). */
  contextSize: number;
}

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface GenerateRequest {
  /** Ends with a user turn. */
  turns: ChatTurn[];
  /** Used when the turns carry no system message. */
  defaultSystemPrompt: string;
  maxTokens: number;
  temperature: number;
  topP?: number;
  seed?: number;
  signal: AbortSignal;
  onText?: (text: string) => void;
}

export interface Generation {
  text: string;
  promptTokens: number;
  completionTokens: number;
  /** 'length' when max tokens cut the answer. */
  finish: 'stop' | 'length';
}

export class QueueFullError extends Error {
  constructor(readonly concurrency: number, readonly queueLimit: number) {
    super(`model busy: ${concurrency} answers in progress and ${queueLimit} queued; retry later`);
    this.name = 'QueueFullError';
  }
}

/**
 * A GGUF model loaded with node-llama-cpp's prebuilt CPU binary (never built or downloaded
 * at run time), answering chats through its LlamaChatSession, which applies the model's own
 * chat template. One context holds `concurrency` sequences; each request borrows one.
 */
export class LlamaEngine {
  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly lib: NodeLlamaCpp,
    private readonly sequences: Admission<LlamaContextSequence>,
    readonly options: EngineOptions,
  ) {}

  static async load(options: EngineOptions, logger: Logger): Promise<LlamaEngine> {
    const started = performance.now();
    const lib = await loadNodeLlamaCpp();
    const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: 'error' });
    let model: LlamaModel | undefined;
    try {
      model = await llama.loadModel({ modelPath: options.modelPath });
      const context = await model.createContext({ contextSize: options.contextSize * options.concurrency, sequences: options.concurrency, threads: options.threads });
      const sequences = Array.from({ length: options.concurrency }, () => context.getSequence());
      logger.info({ modelPath: options.modelPath, threads: options.threads, concurrency: options.concurrency, loadMs: Math.round(performance.now() - started) }, 'model loaded');
      return new LlamaEngine(llama, model, context, lib, new Admission(sequences, options.queueLimit), options);
    } catch (err) {
      await model?.dispose().catch(() => undefined);
      await llama.dispose().catch(() => undefined);
      throw new Error(`cannot load model ${options.modelPath}: ${(err as Error).message}`, { cause: err });
    }
  }

  get busy(): number {
    return this.sequences.busy;
  }

  get queued(): number {
    return this.sequences.queued;
  }

  /** Generates one answer; throws QueueFullError at once when the queue is full. */
  async generate(request: GenerateRequest): Promise<Generation> {
    const waiting = this.sequences.acquire(request.signal);
    if (!waiting) throw new QueueFullError(this.options.concurrency, this.options.queueLimit);
    const sequence = await waiting;
    try {
      return await this.generateOn(sequence, request);
    } finally {
      this.sequences.release(sequence);
    }
  }

  private async generateOn(sequence: LlamaContextSequence, request: GenerateRequest): Promise<Generation> {
    // A fresh history per request: nothing from a previous client's chat leaks into this one.
    await sequence.clearHistory();
    const before = sequence.tokenMeter.getState();
    const session = new this.lib.LlamaChatSession({ contextSequence: sequence, autoDisposeSequence: false });
    try {
      const { history, prompt } = toHistory(request.turns, request.defaultSystemPrompt);
      session.setChatHistory(history);
      let completionTokens = 0;
      const result = await session.promptWithMeta(prompt, {
        maxTokens: request.maxTokens,
        temperature: request.temperature,
        ...(request.topP === undefined ? {} : { topP: request.topP }),
        ...(request.seed === undefined ? {} : { seed: request.seed }),
        signal: request.signal,
        stopOnAbortSignal: true,
        onToken: (tokens) => (completionTokens += tokens.length),
        ...(request.onText ? { onTextChunk: request.onText } : {}),
      });
      const used = sequence.tokenMeter.diff(before);
      return {
        text: result.responseText,
        // The meter counts every token the context evaluated as input: the rendered chat template.
        promptTokens: Math.max(0, used.usedInputTokens),
        completionTokens,
        finish: result.stopReason === 'maxTokens' ? 'length' : 'stop',
      };
    } finally {
      session.dispose({ disposeSequence: false });
    }
  }

  async close(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}

/** OpenAI turns as node-llama-cpp's chat history, plus the final user prompt. */
export function toHistory(turns: readonly ChatTurn[], defaultSystemPrompt: string): { history: ChatHistoryItem[]; prompt: string } {
  const last = turns.at(-1);
  if (!last || last.role !== 'user') throw new Error('the last message must come from the user');
  const history: ChatHistoryItem[] = [];
  if (!turns.some((t) => t.role === 'system') && defaultSystemPrompt !== '') history.push({ type: 'system', text: defaultSystemPrompt });
  for (const turn of turns.slice(0, -1)) {
    if (turn.role === 'assistant') history.push({ type: 'model', response: [turn.content] });
    else history.push({ type: turn.role, text: turn.content });
  }
  return { history, prompt: last.content };
}
