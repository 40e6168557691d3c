import { type IncomingMessage, type ServerResponse } from 'node:http';
import { allow, createOpenAiServer } from './openai-server.js';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../common/config-error.js';
import { createLogger, type Logger } from '../common/logger.js';
import { handleChat } from './chat.js';
import { BodyTooLargeError, readBody, sendJson } from './http.js';
import { mergeKnobs, parseKnobs, type Knobs, type KnobsInput } from './knobs.js';
import { errorBody, parseChatRequest } from './openai.js';
import { forkRandom, rootRandom, type Random } from './random.js';
import { SimStats, type SimStatsSnapshot } from './stats.js';

export interface SimOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The model version this sim plays; names its model and fills `x-model-version`. */
  version: string;
  knobs?: KnobsInput;
  logger?: Logger;
}

export interface SimHandle {
  /** e.g. http://127.0.0.1:8001 */
  url: string;
  port: number;
  /** Stops listening and drops open connections (keep-alive and in-flight streams). */
  close(): Promise<void>;
  stats(): SimStatsSnapshot;
  /** Replaces the knobs (missing fields take defaults); throws ConfigError when invalid. */
  setKnobs(knobs: KnobsInput): Knobs;
  /** Deep-merges a partial update into the knobs; throws ConfigError when invalid. */
  patchKnobs(patch: unknown): Knobs;
  knobs(): Knobs;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;

/** Mutable state of one sim: knobs, the root PRNG and the counters. */
class SimState {
  knobs: Knobs;
  random: Random;
  readonly stats = new SimStats();
  private sequence = 0;

  constructor(knobs: Knobs) {
    this.knobs = knobs;
    this.random = rootRandom(knobs.seed);
  }

  /** New knobs take effect for requests that arrive afterwards; a changed seed restarts the PRNG. */
  setKnobs(next: Knobs): Knobs {
    const reseed = next.seed !== this.knobs.seed;
    this.knobs = next;
    if (reseed) this.random = rootRandom(next.seed);
    return next;
  }

  /** Clears the counters and restarts the PRNG from the seed, so a seeded run can be repeated. */
  reset(): void {
    this.stats.reset();
    this.random = rootRandom(this.knobs.seed);
  }

  nextId(): string {
    return `chatcmpl-sim-${(++this.sequence).toString(36)}`;
  }
}

export async function startSim(opts: SimOptions): Promise<SimHandle> {
  const logger = (opts.logger ?? createLogger('sim')).child({ version: opts.version });
  const state = new SimState(parseKnobs(opts.knobs ?? {}, 'sim knobs'));
  const inflight = new Set<AbortController>();

  const server = createOpenAiServer(opts.version, 'fledge sim', logger, route);

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://sim').pathname;
    const method = req.method ?? 'GET';
    switch (path) {
      case '/v1/chat/completions':
        if (!allow(res, method, ['POST'])) return;
        return chat(req, res);
      case '/v1/models':
        if (!allow(res, method, ['GET'])) return;
        return sendJson(res, 200, {
          object: 'list',
          data: [{ id: opts.version, object: 'model', created: 0, owned_by: 'fledge-sim' }],
        });
      case '/admin/knobs':
        if (!allow(res, method, ['GET', 'PUT', 'PATCH'])) return;
        if (method === 'GET') return sendJson(res, 200, state.knobs);
        return updateKnobs(req, res, method === 'PUT');
      case '/admin/stats':
        if (!allow(res, method, ['GET'])) return;
        return sendJson(res, 200, state.stats.snapshot(opts.version));
      case '/admin/reset':
        if (!allow(res, method, ['POST'])) return;
        state.reset();
        logger.info('stats reset');
        return sendJson(res, 200, state.stats.snapshot(opts.version));
      case '/healthz':
        if (!allow(res, method, ['GET', 'HEAD'])) return;
        return sendJson(res, 200, { status: 'ok', version: opts.version });
      default:
        return sendJson(res, 404, errorBody(404, `no route for ${method} ${path}`));
    }
  }

  async function chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const user = headerValue(req, 'x-user-id');
    const body = await readBodyOrReply(req, res, (status, message) => {
      state.stats.record(status, user);
      sendJson(res, status, errorBody(status, message));
    });
    if (body === undefined) return;
    const parsed = parseChatRequest(body);
    if (!parsed.ok) {
      state.stats.record(400, user);
      return sendJson(res, 400, errorBody(400, parsed.message, parsed.param, 'invalid_request'));
    }
    const abort = new AbortController();
    inflight.add(abort);
    res.on('close', () => abort.abort());
    try {
      await handleChat(res, {
        request: parsed.request,
        knobs: state.knobs,
        random: forkRandom(state.random),
        version: opts.version,
        id: state.nextId(),
        signal: abort.signal,
        record: (status) => state.stats.record(status, user),
        logger,
      });
    } finally {
      inflight.delete(abort);
    }
  }

  async function updateKnobs(req: IncomingMessage, res: ServerResponse, replace: boolean): Promise<void> {
    const invalid = (problems: { path: string; message: string }[]): void =>
      sendJson(res, 400, { error: 'invalid knobs', issues: problems });
    const body = await readBodyOrReply(req, res, (status, message) =>
      sendJson(res, status, { error: message, issues: [{ path: '', message }] }),
    );
    if (body === undefined) return;
    let input: unknown;
    try {
      input = JSON.parse(body);
    } catch (err) {
      return invalid([{ path: '', message: `body is not valid JSON: ${(err as Error).message}` }]);
    }
    try {
      const next = replace ? parseKnobs(input, 'PUT /admin/knobs') : mergeKnobs(state.knobs, input, 'PATCH /admin/knobs');
      state.setKnobs(next);
      logger.info({ knobs: next, replace }, 'knobs changed');
      sendJson(res, 200, next);
    } catch (err) {
      if (err instanceof ConfigError) return invalid(err.problems);
      throw err;
    }
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(new Error(`fledge sim ${opts.version} cannot listen on ${opts.host}:${opts.port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'server error'));

  const port = (server.address() as AddressInfo).port;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  // Golden answers can be long (tests use 200 KB ones): the log names how many there are.
  const { golden, ...shown } = state.knobs;
  logger.info({ url, host: opts.host, port, knobs: shown, goldenAnswers: golden?.length ?? 0 }, 'sim listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const abort of inflight) abort.abort();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }).then(() => logger.info({ url }, 'sim closed'));
      return closing;
    },
    stats: () => state.stats.snapshot(opts.version),
    setKnobs: (knobs) => state.setKnobs(parseKnobs(knobs, 'setKnobs')),
    patchKnobs: (patch) => state.setKnobs(mergeKnobs(state.knobs, patch, 'patchKnobs')),
    knobs: () => state.knobs,
  };
}


function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Reads the body; on a too-large or broken body replies through `fail` and returns undefined. */
async function readBodyOrReply(
  req: IncomingMessage,
  res: ServerResponse,
  fail: (status: number, message: string) => void,
): Promise<string | undefined> {
  try {
    return await readBody(req, MAX_BODY_BYTES);
  } catch (err) {
    if (err instanceof BodyTooLargeError) {
      res.setHeader('connection', 'close'); // the rest of the body is not worth reading
      fail(413, err.message);
      return undefined;
    }
    fail(400, `cannot read request body: ${(err as Error).message}`);
    return undefined;
  }
}
