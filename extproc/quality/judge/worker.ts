import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../../../common/logger.js';
import { startAdminServer } from '../../admin.js';
import { parseSampleFields, type JudgeSample } from '../judge-queue.js';
import { ScoreWindow } from '../score-window.js';
import { parsePairSampleFields } from '../../shadow/pair-judge-sample.js';
import { PreferenceLog } from '../../shadow/preference-log.js';
import { askJudge, askPairwise, JudgeOutputError, type JudgeEndpoint } from './judge-client.js';
import { judgePair, PairJudgeMetrics, type CallOutcome } from './pair-judging.js';
import { DEFAULT_PAIRWISE_RUBRIC } from './pairwise-rubric.js';
import type { JudgeVerdict } from './rubric.js';
import { RateLimiter } from './rate-limiter.js';

export interface JudgeWorkerOptions {
  redisUrl: string;
  stream: string;
  group: string;
  consumer: string;
  /** Scores are also published here (XADD), for anyone else who wants them. */
  scoresStream: string;
  endpoint: JudgeEndpoint;
  ratePerSecond: number;
  /** Judge calls in flight at once (each still waits for the rate limiter). */
  concurrency: number;
  /** Samples older than this are dropped unjudged (counted as expired). */
  ttlSeconds: number;
  scoreWindowSeconds: number;
  adminHost: string;
  adminPort: number;
  /** The shadow pairs stream (extproc quality.judge.pairStream); absent: no pairwise judging. */
  pairStream?: string;
  /** The pairwise rubric (default DEFAULT_PAIRWISE_RUBRIC). */
  pairRubric?: string;
}

export const defaultConsumer = (): string => `${hostname()}-${process.pid}`;

/** Fields are null for an entry trimmed (MAXLEN) while it was pending. */
type StreamEntry = [id: string, fields: string[] | null];
type ReadReply = [stream: string, entries: StreamEntry[]][] | null;

/**
 * `fledge judge`: reads sampled (prompt, answer) entries from the Redis Stream (consumer
 * group, so several workers share the work), asks the judge endpoint, rate-limited, and
 * exports the scores as inference_quality_score{evaluator="judge"}. With a pairs stream it
 * also judges shadow pairs, both orders each, into inference_shadow_preference_total
 * (pair-judging.ts); both streams share the rate limit and the calls in flight. While the
 * judge is down an entry is retried with backoff until it expires; nothing on the request
 * path ever waits for this.
 */
export class JudgeWorker {
  readonly registry = new Registry();
  private readonly redis: Redis;
  /** The pairs loop's own connection: a blocking XREADGROUP holds its connection, and must not hold up the samples loop's reads and acks. */
  private pairRedis: Redis | undefined;
  /** The judged pairs' preferences for fledge shadow-report, written on the pairs loop's connection. */
  private preferences: PreferenceLog | undefined;
  private readonly limiter: RateLimiter;
  private readonly abort = new AbortController();
  private readonly scores: ScoreWindow<'service' | 'version' | 'rollout_hash' | 'evaluator'>;
  private readonly samples = new Counter({ name: 'fledge_judge_samples_total', help: 'Samples the judge worker finished, by result (scored, judge-error, expired, invalid).', labelNames: ['result'] as const, registers: [this.registry] });
  private readonly calls = new Counter({ name: 'fledge_judge_calls_total', help: 'Calls to the judge endpoint, by result (ok, error: endpoint failed, no-verdict: answered but not with a verdict).', labelNames: ['result'] as const, registers: [this.registry] });
  private readonly errors = new Counter({ name: 'fledge_judge_errors_total', help: 'Judge replies that were no verdict (unparseable, off-scale, no-hallucination); the sample gets no score.', labelNames: ['service', 'version', 'rollout_hash', 'problem'] as const, registers: [this.registry] });
  private readonly verdicts = new Counter({ name: 'fledge_judge_verdicts_total', help: 'Verdicts the judge gave, by hallucination (true, false): the judged samples behind the judge metrics.', labelNames: ['service', 'version', 'rollout_hash', 'hallucination'] as const, registers: [this.registry] });
  private readonly hallucinations = new Counter({ name: 'inference_hallucination_total', help: 'Estimated hallucinated responses by the judge\'s verdict (evaluator="judge"); each verdict counts 1 / (sampling rate × judge rate).', labelNames: ['service', 'version', 'rollout_hash', 'evaluator'] as const, registers: [this.registry] });
  private readonly pairMetrics = new PairJudgeMetrics(this.registry);
  private readonly slots: Slots;
  private loops: Promise<void>[] = [];
  private admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  private connected = false;

  constructor(
    private readonly options: JudgeWorkerOptions,
    private readonly logger: Logger,
  ) {
    this.redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 200, 2000) });
    this.redis.on('ready', () => (this.connected = true));
    this.redis.on('error', (err: Error) => this.logger.warn({ err: err.message }, 'judge worker: redis error'));
    this.limiter = new RateLimiter(options.ratePerSecond);
    this.slots = new Slots(options.concurrency, this.abort.signal);
    this.scores = new ScoreWindow(this.registry, 'inference_quality_score', 'Mean LLM-judge score in [0,1] over the window (evaluator="judge").', ['service', 'version', 'rollout_hash', 'evaluator'], options.scoreWindowSeconds);
    collectDefaultMetrics({ register: this.registry, prefix: 'fledge_judge_' });
  }

  async start(): Promise<number> {
    const { stream, pairStream } = this.options;
    await this.ensureGroup(stream);
    if (pairStream) await this.ensureGroup(pairStream);
    this.admin = await startAdminServer(this.options.adminHost, this.options.adminPort, { registry: this.registry, ready: () => this.connected, debugState: () => ({ stream, pairStream: pairStream ?? null, group: this.options.group }) }, this.logger);
    const loop = (name: string, redis: Redis, handle: (id: string, fields: string[] | null) => Promise<void>) => this.consume(name, redis, handle).catch((err: unknown) => this.logger.error({ err, stream: name }, 'judge worker loop stopped'));
    this.loops = [loop(stream, this.redis, (id, fields) => this.judgeEntry(id, fields))];
    if (pairStream) {
      const redis = (this.pairRedis = this.redis.duplicate());
      this.preferences = new PreferenceLog(redis);
      redis.on('error', (err: Error) => this.logger.warn({ err: err.message }, 'judge worker: redis error (pairs)'));
      this.loops.push(loop(pairStream, redis, (id, fields) => this.judgePairEntry(redis, id, fields)));
    }
    this.logger.info({ stream, pairStream: pairStream ?? null, group: this.options.group, judge: this.options.endpoint.url, ratePerSecond: this.options.ratePerSecond, adminPort: this.admin.port }, 'judge worker started');
    return this.admin.port;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.redis.disconnect();
    this.pairRedis?.disconnect();
    await Promise.all(this.loops);
    if (this.admin) {
      await new Promise<void>((r) => this.admin!.server.close(() => r()));
      this.admin.server.closeAllConnections();
    }
  }

  private async ensureGroup(stream: string): Promise<void> {
    try {
      // From the start of the stream: samples queued before any worker ran are judged too.
      await this.redis.xgroup('CREATE', stream, this.options.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw new Error(`judge worker cannot create group ${this.options.group} on ${stream}: ${(err as Error).message}`);
    }
  }

  private async consume(stream: string, redis: Redis, handle: (id: string, fields: string[] | null) => Promise<void>): Promise<void> {
    let cursor = '0'; // first our own pending entries (after a restart), then new ones
    while (!this.abort.signal.aborted) {
      let reply: ReadReply;
      try {
        reply = (await redis.xreadgroup('GROUP', this.options.group, this.options.consumer, 'COUNT', String(this.options.concurrency), 'BLOCK', '1000', 'STREAMS', stream, cursor)) as ReadReply;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.logger.warn({ err: (err as Error).message, stream }, 'judge worker: read failed; retrying');
        // The stream expired with its group (a pairs stream does when no pair came for its TTL): make it again.
        if (String((err as Error).message).includes('NOGROUP')) await this.ensureGroup(stream).catch(() => undefined);
        await sleep(500, this.abort.signal);
        continue;
      }
      const entries = reply?.[0]?.[1] ?? [];
      if (cursor === '0' && entries.length === 0) cursor = '>';
      await Promise.all(entries.map(([id, fields]) => handle(id, fields)));
    }
  }

  private async judgeEntry(id: string, fields: string[] | null): Promise<void> {
    const sample = parseSampleFields(fields ?? []);
    if (!sample) {
      this.samples.inc({ result: 'invalid' });
      await this.ack(this.options.stream, id);
      return;
    }
    const outcome = await this.callUntilDone(sample.enqueued_at, () => askJudge(this.options.endpoint, sample.prompt, sample.answer), (result) => this.calls.inc({ result }), { id });
    if (outcome.kind === 'stopped') return;
    if (outcome.kind === 'ok') this.record(sample, outcome.value);
    else if (outcome.kind === 'expired') this.samples.inc({ result: 'expired' });
    else {
      // The judge works but said nothing usable; asking again at temperature 0 would not help.
      this.errors.inc({ service: sample.service, version: sample.version, rollout_hash: sample.rollout_hash, problem: outcome.problem });
      this.samples.inc({ result: 'judge-error' });
      this.logger.warn({ problem: outcome.problem, err: outcome.message, id, service: sample.service, version: sample.version }, 'judge reply is no verdict; sample not scored');
    }
    await this.ack(this.options.stream, id);
  }

  private async judgePairEntry(redis: Redis, id: string, fields: string[] | null): Promise<void> {
    const stream = this.options.pairStream!;
    const sample = parsePairSampleFields(fields ?? []);
    if (!sample) {
      this.pairMetrics.pairs.inc({ result: 'invalid' });
      await this.ack(stream, id, true, redis);
      return;
    }
    this.pairMetrics.touch(sample);
    const rubric = this.options.pairRubric ?? DEFAULT_PAIRWISE_RUBRIC;
    const outcome = await judgePair(sample, (order, a, b) =>
      this.callUntilDone(sample.enqueued_at, () => askPairwise(this.options.endpoint, rubric, sample.prompt, a, b), (result) => this.pairMetrics.calls.inc({ order, result }), { id, order }),
    );
    if (outcome.kind === 'stopped') return;
    this.pairMetrics.record(sample, outcome);
    if (outcome.kind === 'judged') {
      const record = { at: Date.now(), requestId: sample.request_id, pair: sample.pair, ...outcome.combined };
      // For fledge shadow-report; the metrics are what a gate reads, so a failed write only thins the report.
      this.preferences?.append(sample.service, sample.rollout_hash, record).catch((err: Error) => this.logger.warn({ err: err.message }, 'judge worker: keeping a preference for the report failed'));
    }
    if (outcome.kind === 'judge-error') this.logger.warn({ problem: outcome.problem, err: outcome.message, order: outcome.order, id, service: sample.service, pair: sample.pair }, 'pairwise judge reply is no verdict; pair gets no preference');
    // The pair's texts are not kept once it is finished.
    await this.ack(stream, id, true, redis);
  }

  /**
   * One judge call, waiting for the rate limiter and a free slot: retried with backoff while
   * the endpoint fails, until the entry is older than the TTL. A reply that is no verdict is
   * final (at temperature 0 the judge would say the same again).
   */
  private async callUntilDone<T>(enqueuedAt: string, call: () => Promise<T>, counted: (result: 'ok' | 'error' | 'no-verdict') => void, context: Record<string, string>): Promise<CallOutcome<T>> {
    for (let attempt = 0; ; attempt++) {
      if (this.abort.signal.aborted) return { kind: 'stopped' };
      if (this.expired(enqueuedAt)) return { kind: 'expired' };
      await this.limiter.take(this.abort.signal);
      await this.slots.acquire();
      if (this.abort.signal.aborted) return { kind: 'stopped' };
      try {
        const value = await call();
        counted('ok');
        return { kind: 'ok', value };
      } catch (err) {
        if (err instanceof JudgeOutputError) {
          counted('no-verdict');
          return { kind: 'no-verdict', problem: err.problem, message: err.message };
        }
        counted('error');
        this.logger.warn({ err: (err as Error).message, attempt, ...context }, 'judge call failed; the entry waits');
      } finally {
        this.slots.release();
      }
      await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)), this.abort.signal);
    }
  }

  private expired(enqueuedAt: string): boolean {
    return Date.now() - Number(enqueuedAt) > this.options.ttlSeconds * 1000;
  }

  private record(sample: JudgeSample, verdict: JudgeVerdict): void {
    const labels = { service: sample.service, version: sample.version, rollout_hash: sample.rollout_hash };
    this.scores.add({ ...labels, evaluator: 'judge' }, verdict.score);
    // Created at 0 with the first verdict, so a rate over it starts from the first sample.
    this.hallucinations.inc({ ...labels, evaluator: 'judge' }, verdict.hallucination ? Number(sample.weight) : 0);
    this.verdicts.inc({ ...labels, hallucination: String(verdict.hallucination) });
    this.samples.inc({ result: 'scored' });
    this.redis
      .xadd(this.options.scoresStream, 'MAXLEN', '~', '10000', '*', 'service', labels.service, 'version', labels.version, 'rollout_hash', labels.rollout_hash, 'score', String(verdict.score), 'hallucination', String(verdict.hallucination), 'reason', verdict.reason, 'judged_at', String(Date.now()))
      .catch((err: Error) => this.logger.warn({ err: err.message }, 'judge worker: publishing a score failed'));
  }

  /** `remove`: also XDEL the entry (it holds text no one needs any more). */
  private async ack(stream: string, id: string, remove = false, redis = this.redis): Promise<void> {
    try {
      await redis.xack(stream, this.options.group, id);
      if (remove) await redis.xdel(stream, id);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, id, stream }, 'judge worker: ack failed (the entry may be judged twice)');
    }
  }
}

/** At most `n` judge calls in flight across both streams; a stop lets every waiter go. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(
    n: number,
    private readonly signal: AbortSignal,
  ) {
    this.free = n;
    signal.addEventListener('abort', () => this.waiting.splice(0).forEach((go) => go()), { once: true });
  }

  async acquire(): Promise<void> {
    if (this.signal.aborted) return;
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((go) => this.waiting.push(go));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
