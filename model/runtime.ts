import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * node-llama-cpp lives outside the repository's node_modules: `make model-deps` installs
 * it (pinned by model/runtime/package-lock.json, CPU binary only) under the fledge cache,
 * because its GPU builds would add ~700 MB to every `npm ci`. This module loads it from
 * there and names the small part of its API fledge uses.
 */
export const NODE_LLAMA_CPP_VERSION = '3.22.1';

export function fledgeCache(): string {
  return process.env.FLEDGE_CACHE ?? join(homedir(), '.cache', 'fledge');
}

export function runtimeDir(): string {
  return process.env.FLEDGE_LLAMA_RUNTIME ?? join(fledgeCache(), `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}`);
}

export type Token = number;

export interface TokenMeterState {
  readonly usedInputTokens: number;
  readonly usedOutputTokens: number;
}

/** One generated token with what node-llama-cpp's evaluateWithMetadata reports about it. */
export interface TokenWithMetadata {
  token: Token;
  /** Probability of the selected token under the request's sampling settings. */
  confidence: number;
  /** Every candidate's probability, highest first (only when asked for). */
  probabilities?: Map<Token, number>;
}

/** A token generator: yields tokens, takes an optional replacement token back. */
export type TokenGenerator<T> = AsyncGenerator<T, void, void | Token | Token[]>;

export interface LlamaContextSequence {
  clearHistory(): Promise<void>;
  /** What LlamaChat generates with (options passed through untouched). */
  evaluate(tokens: Token[], options?: object): TokenGenerator<Token>;
  evaluateWithMetadata(tokens: Token[], metadata: { confidence: true; probabilities?: boolean }, options?: object): TokenGenerator<TokenWithMetadata>;
  readonly tokenMeter: { getState(): TokenMeterState; diff(state: TokenMeterState): TokenMeterState };
}

export interface LlamaContext {
  getSequence(): LlamaContextSequence;
  dispose(): Promise<void>;
}

export interface LlamaModel {
  /** Token ids to text; `specialTokens` false renders special tokens as nothing. */
  detokenize(tokens: readonly Token[], specialTokens?: boolean): string;
  createContext(options: { contextSize: number; sequences: number; threads: number }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}

/** A compiled GBNF grammar that constrains sampling (opaque here). */
export interface LlamaGrammar {
  readonly grammar?: string;
}

export interface Llama {
  loadModel(options: { modelPath: string }): Promise<LlamaModel>;
  /** Any JSON value. */
  getGrammarFor(type: 'json'): Promise<LlamaGrammar>;
  /** JSON conforming to a schema (the subset node-llama-cpp's GBNF converter supports). */
  createGrammarForJsonSchema(schema: object): Promise<LlamaGrammar>;
  dispose(): Promise<void>;
}

export type ChatHistoryItem = { type: 'system'; text: string } | { type: 'user'; text: string } | { type: 'model'; response: string[] };

export interface PromptOptions {
  maxTokens: number;
  temperature: number;
  topP?: number;
  seed?: number;
  grammar?: LlamaGrammar;
  signal?: AbortSignal;
  stopOnAbortSignal?: boolean;
  onTextChunk?: (text: string) => void;
  onToken?: (tokens: Token[]) => void;
}

export type StopReason = 'abort' | 'maxTokens' | 'eogToken' | 'stopGenerationTrigger' | 'functionCalls' | 'customStopTrigger';

export interface LlamaChatSession {
  setChatHistory(history: ChatHistoryItem[]): void;
  promptWithMeta(prompt: string, options: PromptOptions): Promise<{ responseText: string; stopReason: StopReason }>;
  dispose(options: { disposeSequence: boolean }): void;
}

export interface NodeLlamaCpp {
  getLlama(options: { gpu: false; build: 'never'; logLevel?: 'error' | 'warn' | 'info' }): Promise<Llama>;
  LlamaChatSession: new (options: { contextSequence: LlamaContextSequence; autoDisposeSequence: boolean }) => LlamaChatSession;
}

let loaded: Promise<NodeLlamaCpp> | undefined;

/** Imports node-llama-cpp from the cache; a clear error says how to install it when absent. */
export function loadNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  loaded ??= (async () => {
    const entry = join(runtimeDir(), 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
    if (!existsSync(entry)) {
      throw new Error(`node-llama-cpp ${NODE_LLAMA_CPP_VERSION} is not installed at ${runtimeDir()}: run \`make model-deps\` (installs it and the SmolLM2 model into ${fledgeCache()})`);
    }
    return (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
  })();
  return loaded;
}
