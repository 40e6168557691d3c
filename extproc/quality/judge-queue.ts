import { Redis } from 'ioredis';
import type { Logger } from '../../common/logger.js';

/** One sample for the LLM judge, as it travels on the Redis Stream. */
export interface JudgeSample {
  service: string;
  version: string;
  rollout_hash: string;
  prompt: string;
  answer: string;
  /** Milliseconds since the epoch; the worker expires samples older than its TTL. */
  enqueued_at: string;
  /**
   * How many requests this sample stands for: 1 / (chance it was sampled × chance it went
   * to the judge). The worker counts a hallucination verdict with this weight, so judge
   * verdicts estimate hallucinations over all traffic, like extproc's own counters.
   */
  weight: string;
}

export function sampleFields(s: JudgeSample): string[] {
  return Object.entries(s).flat();
}

export function parseSampleFields(fields: string[]): JudgeSample | undefined {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
  const get = (k: keyof JudgeSample) => m.get(k);
  // Samples queued before weights existed stand for one request.
  const weight = get('weight') ?? '1';
  if (!(Number(weight) >= 1)) return undefined;
  const s = { service: get('service'), version: get('version'), rollout_hash: get('rollout_hash'), prompt: get('prompt'), answer: get('answer'), enqueued_at: get('enqueued_at'), weight };
  return Object.values(s).every((v) => v !== undefined) ? (s as JudgeSample) : undefined;
}

/**
 * extproc's side of the judge: XADD, fire and forget. With Redis away commands fail at
 * once (no offline queue), so nothing piles up in memory and nothing waits.
 */
export class JudgeQueue {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly stream: string,
    private readonly maxLength: number,
    private readonly logger: Logger,
    private readonly onResult: (result: 'queued' | 'failed') => void,
    /**
     * Set for streams that carry text which must not outlive the worker's TTL (shadow pairs):
     * each add also trims entries older than it (stream ids are times) and sets the key to
     * expire after it, so with no new entries the rest goes too.
     */
    private readonly ttlSeconds?: number,
  ) {
    this.redis = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(times * 200, 2000),
      lazyConnect: false,
    });
    this.redis.on('error', (err: Error) => this.logger.debug({ err: err.message }, 'judge queue: redis error'));
  }

  /** Whether entries can be added now (without a connection they are dropped, not queued). */
  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  offer(sample: JudgeSample): void {
    this.append(sampleFields(sample));
  }

  /** XADDs one entry of any shape (the pairwise judge's pairs travel on a stream of their own). */
  append(fields: string[]): void {
    this.add(fields)
      .then(() => this.onResult('queued'))
      .catch((err: Error) => {
        this.onResult('failed');
        this.logger.debug({ err: err.message, stream: this.stream }, 'judge queue: entry dropped');
      });
  }

  private async add(fields: string[]): Promise<void> {
    if (this.ttlSeconds === undefined) {
      await this.redis.xadd(this.stream, 'MAXLEN', '~', String(this.maxLength), '*', ...fields);
      return;
    }
    const results = await this.redis
      .multi()
      .xadd(this.stream, 'MAXLEN', '~', String(this.maxLength), '*', ...fields)
      .xtrim(this.stream, 'MINID', '~', String(Date.now() - this.ttlSeconds * 1000))
      .expire(this.stream, this.ttlSeconds)
      .exec();
    const failed = results?.find(([err]) => err)?.[0];
    if (!results || failed) throw failed ?? new Error('transaction aborted');
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
