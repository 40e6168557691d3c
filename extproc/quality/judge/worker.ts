import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../../../common/logger.js';
import { startAdminServer } from '../../admin.js';
import { parseSampleFields, type JudgeSample } from '../judge-queue.js';
import { ScoreWindow } from '../score-window.js';
import { askJudge, JudgeOutputError, type JudgeEndpoint } from './judge-client.js';
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
}

export const defaultConsumer = (): string => `${hostname()}-${process.pid}`;

/** Fields are null for an entry trimmed (MAXLEN) while it was pending. */
type StreamEntry = [id: string, fields: string[] | null];
type ReadReply = [stream: string, entries: StreamEntry[]][] | null;

/**
 * `fledge judge`: reads sampled pairs from the Redis Stream (consumer group, so several
 * workers share the work), asks the judge endpoint, rate-limited, and exports the scores
 * as inference_quality_score{evaluator="judge"}. While the judge is down a sample is
 * retried with backoff until it expires; nothing on the request path ever waits for this.
 */
export class JudgeWorker {
  readonly registry = new Registry();
  private readonly redis: Redis;
  private readonly limiter: RateLimiter;
  private readonly abort = new AbortController();
  private readonly scores: ScoreWindow<'service' | 'version' | 'rollout_hash' | 'evaluator'>;
  private readonly samples = new Counter({ name: 'fledge_judge_samples_total', help: 'Samples the judge worker finished, by result (scored, judge-error, expired, invalid).', labelNames: ['result'] as const, registers: [this.registry] });
  private readonly calls = new Counter({ name: 'fledge_judge_calls_total', help: 'Calls to the judge endpoint, by result (ok, error: endpoint failed, no-verdict: answered but not with a verdict).', labelNames: ['result'] as const, registers: [this.registry] });
  private readonly errors = new Counter({ name: 'fledge_judge_errors_total', help: 'Judge replies that were no verdict (unparseable, off-scale, no-hallucination); the sample gets no score.', labelNames: ['service', 'version', 'rollout_hash', 'problem'] as const, registers: [this.registry] });
  private readonly verdicts = new Counter({ name: 'fledge_judge_verdicts_total', help: 'Verdicts the judge gave, by hallucination (true, false): the judged samples behind the judge metrics.', labelNames: ['service', 'version', 'rollout_hash', 'hallucination'] as const, registers: [this.registry] });
  private readonly hallucinations = new Counter({ name: 'inference_hallucination_total', help: 'Estimated hallucinated responses by the judge\'s verdict (evaluator="judge"); each verdict counts 1 / (sampling rate × judge rate).', labelNames: ['service', 'version', 'rollout_hash', 'evaluator'] as const, registers: [this.registry] });
  private loop: Promise<void> | undefined;
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
    this.scores = new ScoreWindow(this.registry, 'inference_quality_score', 'Mean LLM-judge score in [0,1] over the window (evaluator="judge").', ['service', 'version', 'rollout_hash', 'evaluator'], options.scoreWindowSeconds);
    collectDefaultMetrics({ register: this.registry, prefix: 'fledge_judge_' });
  }

  async start(): Promise<number> {
    await this.ensureGroup();
    this.admin = await startAdminServer(this.options.adminHost, this.options.adminPort, { registry: this.registry, ready: () => this.connected, debugState: () => ({ stream: this.options.stream, group: this.options.group }) }, this.logger);
    this.loop = this.run().catch((err: unknown) => this.logger.error({ err }, 'judge worker loop stopped'));
    this.logger.info({ stream: this.options.stream, group: this.options.group, judge: this.options.endpoint.url, ratePerSecond: this.options.ratePerSecond, adminPort: this.admin.port }, 'judge worker started');
    return this.admin.port;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.redis.disconnect();
    await this.loop;
    if (this.admin) {
      await new Promise<void>((r) => this.admin!.server.close(() => r()));
      this.admin.server.closeAllConnections();
    }
  }

  private async ensureGroup(): Promise<void> {
    try {
      // From the start of the stream: samples queued before any worker ran are judged too.
      await this.redis.xgroup('CREATE', this.options.stream, this.options.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw new Error(`judge worker cannot create group ${this.options.group} on ${this.options.stream}: ${(err as Error).message}`);
    }
  }

  private async run(): Promise<void> {
    let cursor = '0'; // first our own pending entries (after a restart), then new ones
    while (!this.abort.signal.aborted) {
      let reply: ReadReply;
      try {
        reply = (await this.redis.xreadgroup('GROUP', this.options.group, this.options.consumer, 'COUNT', String(this.options.concurrency), 'BLOCK', '1000', 'STREAMS', this.options.stream, cursor)) as ReadReply;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.logger.warn({ err: (err as Error).message }, 'judge worker: read failed; retrying');
        await sleep(500, this.abort.signal);
        continue;
      }
      const entries = reply?.[0]?.[1] ?? [];
      if (cursor === '0' && entries.length === 0) cursor = '>';
      await Promise.all(entries.map(([id, fields]) => this.judgeEntry(id, fields)));
    }
  }

  private async judgeEntry(id: string, fields: string[] | null): Promise<void> {
    const sample = parseSampleFields(fields ?? []);
    if (!sample) {
      this.samples.inc({ result: 'invalid' });
      await this.ack(id);
      return;
    }
    for (let attempt = 0; !this.abort.signal.aborted; attempt++) {
      if (this.expired(sample)) {
        this.samples.inc({ result: 'expired' });
        await this.ack(id);
        return;
      }
      await this.limiter.take(this.abort.signal);
      try {
        const verdict = await askJudge(this.options.endpoint, sample.prompt, sample.answer);
        this.calls.inc({ result: 'ok' });
        this.record(sample, verdict);
        await this.ack(id);
        return;
      } catch (err) {
        if (err instanceof JudgeOutputError) {
          // The judge works but said nothing usable; asking again at temperature 0 would not help.
          this.calls.inc({ result: 'no-verdict' });
          this.errors.inc({ service: sample.service, version: sample.version, rollout_hash: sample.rollout_hash, problem: err.problem });
          this.samples.inc({ result: 'judge-error' });
          this.logger.warn({ problem: err.problem, err: err.message, id, service: sample.service, version: sample.version }, 'judge reply is no verdict; sample not scored');
          await this.ack(id);
          return;
        }
        this.calls.inc({ result: 'error' });
        this.logger.warn({ err: (err as Error).message, attempt, id }, 'judge call failed; the sample waits');
        await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)), this.abort.signal);
      }
    }
  }

  private expired(sample: JudgeSample): boolean {
    return Date.now() - Number(sample.enqueued_at) > this.options.ttlSeconds * 1000;
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

  private async ack(id: string): Promise<void> {
    try {
      await this.redis.xack(this.options.stream, this.options.group, id);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, id }, 'judge worker: ack failed (the sample may be judged twice)');
    }
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
