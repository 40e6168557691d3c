import { Redis } from 'ioredis';
import type { Logger } from '../../common/logger.js';
import type { CanaryKey } from './guardrail.js';

type ReadReply = [string, [string, string[]][]][] | null;

/**
 * The LLM judge's verdicts (`fledge judge` XADDs each to its scores stream) as guardrail
 * input: every extproc replica reads the whole stream from the moment it starts (plain XREAD,
 * no consumer group), so each replica's hallucination window holds the same judged answers.
 */
export class JudgeVerdictReader {
  private readonly redis: Redis;
  private closed = false;
  private loop: Promise<void> | undefined;

  constructor(
    url: string,
    private readonly stream: string,
    private readonly onVerdict: (key: CanaryKey, hallucinated: boolean) => void,
    private readonly logger: Logger,
  ) {
    this.redis = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 200, 2000) });
    this.redis.on('error', (err: Error) => this.logger.debug({ err: err.message }, 'judge verdicts: redis error'));
  }

  /** Starts reading; resolves once the starting point is fixed (every verdict added afterwards is read). */
  start(): Promise<void> {
    let started!: () => void;
    const ready = new Promise<void>((resolve) => (started = resolve));
    this.loop = this.run(started);
    return ready;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.redis.disconnect();
    await this.loop?.catch(() => undefined);
  }

  private async run(started: () => void): Promise<void> {
    // Verdicts from now on (older ones belong to windows this replica never had): the stream's
    // last id, so nothing added after start is missed, however late the first read is issued.
    let cursor: string | undefined;
    while (!this.closed && cursor === undefined) {
      try {
        const last = (await this.redis.xrevrange(this.stream, '+', '-', 'COUNT', 1)) as [string, string[]][];
        cursor = last[0]?.[0] ?? '0-0';
      } catch (err) {
        if (this.closed) break;
        this.logger.debug({ err: (err as Error).message, stream: this.stream }, 'judge verdicts: cannot read the stream yet; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    started();
    while (!this.closed && cursor !== undefined) {
      let reply: ReadReply;
      try {
        reply = (await this.redis.xread('COUNT', '500', 'BLOCK', '1000', 'STREAMS', this.stream, cursor)) as ReadReply;
      } catch (err) {
        if (this.closed) return;
        this.logger.debug({ err: (err as Error).message, stream: this.stream }, 'judge verdicts: read failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      for (const [id, fields] of reply?.[0]?.[1] ?? []) {
        cursor = id;
        this.take(fields);
      }
    }
  }

  private take(fields: string[]): void {
    const m = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
    const service = m.get('service');
    const version = m.get('version');
    const rolloutHash = m.get('rollout_hash');
    const hallucination = m.get('hallucination');
    if (!service || !version || !rolloutHash || (hallucination !== 'true' && hallucination !== 'false')) return;
    this.onVerdict({ service, version, rolloutHash }, hallucination === 'true');
  }
}
