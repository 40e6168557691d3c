import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { allow, createOpenAiServer } from '../sim/openai-server.js';
import type { AddressInfo } from 'node:net';
import { createLogger, type Logger } from '../common/logger.js';
import { BodyTooLargeError, readBody, sendJson } from '../sim/http.js';
import { chatChunk, chatCompletion, errorBody, usage, type CompletionMeta } from '../sim/openai.js';
import { parseChatCall, type ChatCall } from './chat-request.js';
import { LlamaEngine, QueueFullError, type EngineOptions, type Generation } from './engine.js';
import type { LlamaGrammar } from './runtime.js';
import type { TokenLogprob } from './token-probabilities.js';

export interface ModelServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** This configuration's version: x-model-version on every answer, `model` in bodies. */
  version: string;
  /** The model's name in /v1/models. */
  modelName: string;
  engine: EngineOptions;
  /** Applied when a request carries no system message. */
  systemPrompt: string;
  /** Applied when a request sets no temperature. */
  temperature: number;
  logger?: Logger;
}

export interface ModelServerHandle {
  url: string;
  port: number;
  /** Resolves once the model is loaded (rejects if it cannot be). */
  ready: Promise<void>;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;

/**
 * `fledge model`: an OpenAI-compatible server on a real GGUF model. It listens at once and
 * loads the model in the background: /healthz says the process lives, /readyz (and chat
 * requests, 503) say whether the model is loaded yet.
 */
export async function startModelServer(opts: ModelServerOptions): Promise<ModelServerHandle> {
  const logger = (opts.logger ?? createLogger('model')).child({ version: opts.version });
  let engine: LlamaEngine | undefined;
  let loadError: Error | undefined;
  const inflight = new Set<AbortController>();

  const server = createOpenAiServer(opts.version, 'fledge model', logger, route);

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://model').pathname;
    const method = req.method ?? 'GET';
    switch (path) {
      case '/v1/chat/completions':
        if (!allow(res, method, ['POST'])) return;
        return chat(req, res);
      case '/v1/models':
        if (!allow(res, method, ['GET'])) return;
        return sendJson(res, 200, { object: 'list', data: [{ id: opts.version, object: 'model', created: 0, owned_by: 'fledge-model', root: opts.modelName }] });
      case '/healthz':
        if (!allow(res, method, ['GET', 'HEAD'])) return;
        return sendJson(res, 200, { status: 'ok', version: opts.version });
      case '/readyz':
        if (!allow(res, method, ['GET', 'HEAD'])) return;
        if (engine) return sendJson(res, 200, { status: 'ready', version: opts.version, model: opts.modelName, busy: engine.busy, queued: engine.queued });
        return sendJson(res, 503, { status: loadError ? 'failed' : 'loading', version: opts.version, ...(loadError ? { error: loadError.message } : {}) });
      default:
        return sendJson(res, 404, errorBody(404, `no route for ${method} ${path}`));
    }
  }

  async function chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: string;
    try {
      body = await readBody(req, MAX_BODY_BYTES);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        res.setHeader('connection', 'close');
        return sendJson(res, 413, errorBody(413, err.message));
      }
      return sendJson(res, 400, errorBody(400, `cannot read request body: ${(err as Error).message}`));
    }
    const parsed = parseChatCall(body);
    if (!parsed.ok) return sendJson(res, 400, errorBody(400, parsed.message, parsed.param, 'invalid_request'));
    if (!engine) {
      const why = loadError ? `model failed to load: ${loadError.message}` : 'model is still loading';
      return sendJson(res, 503, errorBody(503, `not ready: ${why}`, null, 'not_ready'), { 'retry-after': '1' });
    }
    let grammar: LlamaGrammar | undefined;
    if (parsed.call.json) {
      try {
        grammar = await engine.grammarFor(parsed.call.json);
      } catch (err) {
        return sendJson(res, 400, errorBody(400, `invalid request: response_format: this JSON schema cannot be turned into a grammar: ${(err as Error).message}`, 'response_format', 'invalid_request'));
      }
    }
    const abort = new AbortController();
    inflight.add(abort);
    res.on('close', () => abort.abort());
    try {
      await answer(engine, parsed.call, grammar, res, abort.signal);
    } finally {
      inflight.delete(abort);
    }
  }

  async function answer(model: LlamaEngine, call: ChatCall, grammar: LlamaGrammar | undefined, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const meta: CompletionMeta = { id: `chatcmpl-${randomUUID()}`, created: Math.floor(Date.now() / 1000), model: opts.version, fingerprint: `fledge-model-${opts.modelName}` };
    const sse = call.stream ? new SseWriter(res, meta, call.includeUsage) : undefined;
    let generation: Generation;
    const started = performance.now();
    try {
      generation = await model.generate({
        turns: call.turns,
        defaultSystemPrompt: opts.systemPrompt,
        maxTokens: call.maxTokens,
        temperature: call.temperature ?? opts.temperature,
        topP: call.topP,
        seed: call.seed,
        grammar,
        signal,
        ...(call.logprobs ? { logprobs: call.logprobs } : {}),
        ...(sse ? { onText: (text: string) => sse.content(text), ...(call.logprobs ? { onLogprobs: (tokens: TokenLogprob[]) => sse.logprobs(tokens) } : {}) } : {}),
      });
    } catch (err) {
      if (err instanceof QueueFullError) return sendJson(res, 429, errorBody(429, err.message, null, 'queue_full'), { 'retry-after': '1' });
      if (signal.aborted) return; // the client went away; nobody to answer
      logger.error({ err }, 'generation failed');
      if (sse?.started) return sse.fail((err as Error).message);
      return sendJson(res, 500, errorBody(500, `generation failed: ${(err as Error).message}`));
    }
    if (signal.aborted) return;
    const use = usage(generation.promptTokens, generation.completionTokens, 0);
    logger.debug({ ms: Math.round(performance.now() - started), tokens: generation.completionTokens, finish: generation.finish }, 'answered');
    if (sse) return sse.finish(generation.finish, use);
    sendJson(res, 200, chatCompletion(meta, generation.text, generation.finish, use, generation.logprobs ? { content: generation.logprobs } : null));
  }

  const ready = (async () => {
    try {
      engine = await LlamaEngine.load(opts.engine, logger);
    } catch (err) {
      loadError = err as Error;
      logger.error({ err: loadError.message }, 'model failed to load');
      throw loadError;
    }
  })();
  ready.catch(() => undefined); // reported through /readyz and 503s; callers may await it

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(new Error(`fledge model ${opts.version} cannot listen on ${opts.host}:${opts.port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'server error'));
  const port = (server.address() as AddressInfo).port;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  logger.info({ url, model: opts.modelName, systemPrompt: opts.systemPrompt, temperature: opts.temperature }, 'model server listening; loading the model');

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    ready,
    close() {
      closing ??= (async () => {
        for (const abort of inflight) abort.abort();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await ready.catch(() => undefined);
        await engine?.close();
        logger.info({ url }, 'model server closed');
      })();
      return closing;
    },
  };
}

/** Writes a chat completion as server-sent events; headers go out with the first token. */
class SseWriter {
  started = false;
  /** Logprobs of the tokens whose text comes next: they ride on that text's chunk. */
  private pending: TokenLogprob[] = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly meta: CompletionMeta,
    private readonly includeUsage: boolean,
  ) {}

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    this.event(chatChunk(this.meta, { delta: { role: 'assistant', content: '' }, finish_reason: null }, this.includeUsage ? null : undefined));
  }

  logprobs(tokens: TokenLogprob[]): void {
    this.pending.push(...tokens);
  }

  content(text: string): void {
    if (text === '') return;
    this.start();
    this.event(chatChunk(this.meta, { delta: { content: text }, finish_reason: null, ...this.takeLogprobs() }, this.includeUsage ? null : undefined));
  }

  finish(reason: 'stop' | 'length', use: ReturnType<typeof usage>): void {
    this.start();
    // Tokens whose text was empty (e.g. a partial character) still carry their logprobs.
    if (this.pending.length) this.event(chatChunk(this.meta, { delta: {}, finish_reason: null, ...this.takeLogprobs() }, this.includeUsage ? null : undefined));
    this.event(chatChunk(this.meta, { delta: {}, finish_reason: reason }, this.includeUsage ? null : undefined));
    if (this.includeUsage) this.event(chatChunk(this.meta, null, use));
    this.res.end('data: [DONE]\n\n');
  }

  private takeLogprobs(): { logprobs?: { content: TokenLogprob[] } } {
    if (!this.pending.length) return {};
    const content = this.pending;
    this.pending = [];
    return { logprobs: { content } };
  }

  fail(message: string): void {
    this.event(errorBody(500, `generation failed: ${message}`));
    this.res.end('data: [DONE]\n\n');
  }

  private event(body: unknown): void {
    this.res.write(`data: ${JSON.stringify(body)}\n\n`);
  }
}

