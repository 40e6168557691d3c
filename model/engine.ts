import type { Logger } from '../common/logger.js';
import { Admission } from './admission.js';
import { TokenProbabilities, type TokenLogprob } from './token-probabilities.js';
import { loadNodeLlamaCpp, type ChatHistoryItem, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaGrammar, type LlamaModel, type NodeLlamaCpp } from './runtime.js';

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
  /** Constrains the answer (response_format JSON); from LlamaEngine.grammarFor. */
  grammar?: LlamaGrammar;
  signal: AbortSignal;
  onText?: (text: string) => void;
  /** OpenAI logprobs were asked for, with this many alternatives per token (top_logprobs, 0-20). */
  logprobs?: { top: number };
  /** The logprobs of tokens about to be passed to onText (called just before it). */
  onLogprobs?: (tokens: TokenLogprob[]) => void;
}

/** What response_format asked for: any JSON object, or JSON fitting a schema. */
export type JsonFormat = { kind: 'json' } | { kind: 'schema'; schema: object };

const GRAMMAR_CACHE_SIZE = 32;

export interface Generation {
  text: string;
  promptTokens: number;
  completionTokens: number;
  /** 'length' when max tokens cut the answer. */
  finish: 'stop' | 'length';
  /** One entry per answer token, when the request asked for logprobs. */
  logprobs?: TokenLogprob[];
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
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();

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

  /** A grammar for the format, compiled once per distinct format (a bounded cache). */
  grammarFor(format: JsonFormat): Promise<LlamaGrammar> {
    const key = format.kind === 'json' ? 'json' : JSON.stringify(format.schema);
    let grammar = this.grammars.get(key);
    if (!grammar) {
      grammar = format.kind === 'json' ? this.llama.getGrammarFor('json') : this.llama.createGrammarForJsonSchema(format.schema);
      grammar.catch(() => this.grammars.delete(key));
      if (this.grammars.size >= GRAMMAR_CACHE_SIZE) this.grammars.delete(this.grammars.keys().next().value!);
      this.grammars.set(key, grammar);
    }
    return grammar;
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
    const probabilities = request.logprobs ? new TokenProbabilities(this.model, request.logprobs.top) : undefined;
    const detach = probabilities?.attach(sequence);
    const logprobs: TokenLogprob[] = [];
    try {
      const { history, prompt } = toHistory(request.turns, request.defaultSystemPrompt);
      session.setChatHistory(history);
      let completionTokens = 0;
      const result = await session.promptWithMeta(prompt, {
        maxTokens: request.maxTokens,
        temperature: request.temperature,
        ...(request.topP === undefined ? {} : { topP: request.topP }),
        ...(request.seed === undefined ? {} : { seed: request.seed }),
        ...(request.grammar === undefined ? {} : { grammar: request.grammar }),
        signal: request.signal,
        stopOnAbortSignal: true,
        onToken: (tokens) => {
          completionTokens += tokens.length;
          if (!probabilities) return;
          const released = probabilities.released(tokens);
          logprobs.push(...released);
          request.onLogprobs?.(released);
        },
        ...(request.onText ? { onTextChunk: request.onText } : {}),
      });
      const used = sequence.tokenMeter.diff(before);
      return {
        text: result.responseText,
        // The meter counts every token the context evaluated as input: the rendered chat template.
        promptTokens: Math.max(0, used.usedInputTokens),
        completionTokens,
        finish: result.stopReason === 'maxTokens' ? 'length' : 'stop',
        ...(probabilities ? { logprobs } : {}),
      };
    } finally {
      detach?.();
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
