/**
 * Shadow mode in extproc, behind the per-request path: a shadowed user request's copies are
 * sent (copy-sender.ts) once its body is read, the stable's answer to the user is taken from
 * the response the quality observer already reads, and both meet in Redis (pair-store.ts).
 * Every completed pair is counted in inference_shadow_* (shadow-metrics.ts) and kept,
 * without text, for the report (pair-log.ts). With the LLM judge configured, a completed pair
 * whose two answers are whole also goes, with its prompt and texts, to the pairwise judge's
 * stream (pair-judge-sample.ts); the texts wait for their partner only inside the pair store's
 * sides, under its TTL. Nothing here can delay or change a user's
 * request: it runs on later turns of the event loop, and its failures are counted.
 */
import type { JsonAnswerReader } from '../quality/openai-response.js';
import { INLINE_EVALUATION_CHARS } from '../quality/evaluate-sample.js';
import type { AnswerToDescribe } from '../quality/quality-worker.js';
import { Redis } from 'ioredis';
import type { Logger } from '../../common/logger.js';
import type { GoldenEntry } from '../quality/evaluators/golden-set.js';
import type { RequestFacts } from '../quality/openai-request.js';
import type { Observation } from '../quality/observation.js';
import { featuresOfAnswer } from './answer-of.js';
import { CopySender, type CopyRequest } from './copy-sender.js';
import { ShadowPairLog, toRecord } from './pair-log.js';
import { MemoryPairStore, ShadowPairStore, type PairSide, type PairStore } from './pair-store.js';
import type { ShadowConfig } from './shadow-config.js';
import type { ShadowTicket } from './shadow-decision.js';
import { shadowLabels, type CaptureOutcome, type ShadowMetrics } from './shadow-metrics.js';
import type { AnswerFeatures } from './answer-features.js';
import type { JudgeQueue } from '../quality/judge-queue.js';
import { judgeTextOf, pairJudgeSample, pairSampleFields, type JudgeText } from './pair-judge-sample.js';

/** What the user request carried that its copies repeat. */
export interface CopyTemplate {
  authority: string;
  path: string;
  method: string;
  headers: Record<string, string>;
}

export interface ShadowCapture {
  /** Whether copies can start now (bounded in flight); counts the drop when not. */
  admit(ticket: ShadowTicket): boolean;
  /** The request body is read: send the copies. */
  sendCopies(ticket: ShadowTicket, template: CopyTemplate, body: Buffer, request: RequestFacts | undefined, golden: GoldenEntry | undefined): void;
  /** The copies cannot be sent (the body was over the cap): counted, nothing else. */
  drop(ticket: ShadowTicket): void;
  /** The stable's answer to the user, observed to its end. */
  recordStable(ticket: ShadowTicket, observation: Observation, status: number | undefined, latencyMs: number, request: RequestFacts | undefined, golden: GoldenEntry | undefined): void;
  close(): Promise<void>;
}

export interface ShadowCaptureDeps {
  config: ShadowConfig;
  secret: string | Buffer;
  maxBodyBytes: number;
  /** Reads a copy's large JSON answer off the event loop (the quality pipeline's worker thread). */
  readJson?: JsonAnswerReader;
  /** Describes a long answer off the event loop (the same thread); undefined when it could not. */
  describe?: (answer: AnswerToDescribe) => Promise<AnswerFeatures | undefined>;
  metrics: ShadowMetrics;
  logger: Logger;
  /** The pairwise judge's stream, when the LLM judge is configured: pairs' texts are offered to it. */
  pairJudge?: { queue: Pick<JudgeQueue, 'append' | 'close'>; maxTextChars: number };
}

export function startShadowCapture(deps: ShadowCaptureDeps): ShadowCapture {
  const { config } = deps;
  const log = deps.logger.child({ part: 'shadow' });
  const { metrics } = deps;
  const redis = config.redisUrl ? connect(config.redisUrl, log) : undefined;
  const memory = new MemoryPairStore({ ttlSeconds: config.pairTtlSeconds });
  const stores = new Map<string, PairStore>();
  const storeFor = (service: string): PairStore => {
    if (!redis) return memory;
    let store = stores.get(service);
    if (!store) stores.set(service, (store = new ShadowPairStore(redis, { service, ttlSeconds: config.pairTtlSeconds })));
    return store;
  };
  const pairLog = redis && config.logCap > 0 ? new ShadowPairLog(redis, { cap: config.logCap }) : undefined;
  const sender = new CopySender({ via: new URL(config.via!), secret: deps.secret, maxInFlight: config.maxInFlight, timeoutMs: config.timeoutSeconds * 1000, maxBodyBytes: deps.maxBodyBytes, ...(deps.readJson ? { readJson: deps.readJson } : {}) });
  const count = (t: ShadowTicket, side: PairSide, outcome: CaptureOutcome) => metrics.countCapture(t, side, outcome);

  const { pairJudge } = deps;
  const textOf = (observation: Observation, status: number | undefined, prompt: string | undefined, withPrompt: boolean): JudgeText | undefined =>
    judgeTextOf(pairJudge !== undefined, observation, status, prompt, withPrompt, pairJudge?.maxTextChars ?? 0);
  // Memory sides expire as later ones are recorded; with text in them, also within a second of their TTL when traffic stops.
  const sweeper = pairJudge ? setInterval(() => memory.sweep(), 1000).unref() : undefined;

  /** An answer's features: here for a short one, on the quality worker thread for a long one. */
  const describe = (answer: AnswerToDescribe): AnswerFeatures | Promise<AnswerFeatures | undefined> =>
    deps.describe && answer.observation.text.length > INLINE_EVALUATION_CHARS ? deps.describe(answer) : featuresOfAnswer(answer.observation, answer.status, answer.latencyMs, answer.request, answer.golden);

  const record = async (ticket: ShadowTicket, side: PairSide, answer: AnswerToDescribe, text: JudgeText | undefined): Promise<void> => {
    let features: AnswerFeatures | undefined;
    try {
      features = await describe(answer);
    } catch (err) {
      log.warn({ err, service: ticket.service, side }, 'describing a shadow answer failed');
    }
    // Not described (the worker died or timed out, or describing failed): this side is not captured.
    if (!features) return count(ticket, side, 'dropped');
    try {
      const pairs = await storeFor(ticket.service).record(ticket.requestId, side, features, side === 'stable' && ticket.noise, text);
      count(ticket, side, 'recorded');
      for (const pair of pairs) {
        const labels = { service: ticket.service, version: ticket.candidate, rolloutHash: ticket.candidateHash };
        const comparison = metrics.record(pair, shadowLabels(ticket));
        if (pairJudge) {
          // The pair's texts leave here for the judge's stream and are not kept anywhere else.
          const sample = pairJudgeSample(pair, labels, Date.now());
          if (sample) pairJudge.queue.append(pairSampleFields(sample));
          else metrics.judgeOffers.inc({ result: 'skipped' });
        }
        await pairLog?.append(toRecord(pair, labels, Date.now(), comparison));
      }
    } catch (err) {
      count(ticket, side, 'store-error');
      log.debug({ err: (err as Error).message, service: ticket.service, side }, 'shadow answer not stored');
    }
  };

  const copy = async (ticket: ShadowTicket, side: 'candidate' | 'stable-again', request: CopyRequest, facts: RequestFacts | undefined, golden: GoldenEntry | undefined) => {
    const answer = await sender.send(request);
    if (answer.unpinned) {
      // Another version's answer (the proxy failed open): not a capture of this one.
      log.debug({ service: ticket.service, version: request.version, why: answer.unpinned }, 'shadow copy not routed by extproc');
      count(ticket, side, 'unpinned');
      return;
    }
    if (answer.error) log.debug({ service: ticket.service, version: request.version, why: answer.error }, 'shadow copy got no answer');
    await record(ticket, side, { observation: answer.observation, status: answer.status, latencyMs: answer.latencyMs, request: facts, golden }, textOf(answer.observation, answer.status, undefined, false));
  };

  return {
    admit(ticket) {
      if (sender.hasRoom(ticket.noise ? 2 : 1)) return true;
      count(ticket, 'candidate', 'dropped');
      return false;
    },
    sendCopies(ticket, template, body, facts, golden) {
      if (!sender.hasRoom(ticket.noise ? 2 : 1)) {
        count(ticket, 'candidate', 'dropped');
        return;
      }
      ticket.sent = true;
      const base = { service: ticket.service, ...template, body };
      setImmediate(() => {
        void copy(ticket, 'candidate', { ...base, version: ticket.candidate }, facts, golden);
        if (ticket.noise) void copy(ticket, 'stable-again', { ...base, version: ticket.stable }, facts, golden);
      });
    },
    drop(ticket) {
      count(ticket, 'candidate', 'dropped');
    },
    recordStable(ticket, observation, status, latencyMs, facts, golden) {
      if (!ticket.sent) return;
      setImmediate(() => void record(ticket, 'stable', { observation, status, latencyMs, request: facts, golden }, textOf(observation, status, facts?.prompt, true)));
    },
    async close() {
      if (sweeper) clearInterval(sweeper);
      await pairJudge?.queue.close();
      sender.close();
      redis?.disconnect();
    },
  };
}

function connect(url: string, log: Logger): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) log.warn({ err: err.message, redis: url }, 'shadow pair store unreachable: shadow pairs are lost until it is back (user traffic is unaffected)');
    down = true;
  });
  redis.on('ready', () => {
    if (down) log.info({ redis: url }, 'shadow pair store reachable again');
    down = false;
  });
  return redis;
}
