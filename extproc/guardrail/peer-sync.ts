import { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../../common/logger.js';
import { canaryKeyText, type Trip } from './guardrail.js';

/** A trip as replicas (Redis) and workers (IPC) pass it to each other. */
export const tripSchema = z.object({
  service: z.string().min(1),
  version: z.string().min(1),
  rolloutHash: z.string().min(1),
  signal: z.enum(['errors', 'hallucinations']),
  bad: z.number(),
  n: z.number(),
  limit: z.number(),
  at: z.number(),
  origin: z.string(),
});

/** How long a trip stays in the Redis hash if no replica clears it (all replicas gone). */
const TRIPS_TTL_SECONDS = 3600;

/**
 * Shares trips between extproc replicas through Redis: a trip is written to a hash (for
 * replicas that start or reconnect later) and published on a channel (for the ones running
 * now), so every replica routes the canary's users to stable within a publish's latency.
 * Redis being away never blocks a request: each replica still trips on what it sees.
 */
export class GuardrailPeerSync {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly tripsKey: string;

  constructor(
    url: string,
    private readonly channel: string,
    private readonly apply: (trip: Trip) => void,
    private readonly logger: Logger,
  ) {
    this.tripsKey = `${channel}:trips`;
    const options = { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: (times: number) => Math.min(times * 200, 2000) };
    this.pub = new Redis(url, options);
    // The subscriber queues its SUBSCRIBE until connected, and re-subscribes after a reconnect.
    this.sub = new Redis(url, { retryStrategy: options.retryStrategy });
    for (const conn of [this.pub, this.sub]) conn.on('error', (err: Error) => this.logger.debug({ err: err.message }, 'guardrail peer sync: redis error'));
    this.sub.on('message', (_channel: string, text: string) => this.receive(text, 'published'));
    // On every (re)connect, catch up with the trips published while this replica was away.
    this.pub.on('ready', () => void this.catchUp());
  }

  async start(): Promise<void> {
    await this.sub.subscribe(this.channel);
  }

  publish(trip: Trip): void {
    const text = JSON.stringify(trip);
    this.pub
      .multi()
      .hset(this.tripsKey, canaryKeyText(trip), text)
      .expire(this.tripsKey, TRIPS_TTL_SECONDS)
      .publish(this.channel, text)
      .exec()
      .catch((err: Error) => this.logger.warn({ err: err.message, service: trip.service, version: trip.version }, 'guardrail: trip not shared with the other replicas (Redis unavailable); this replica still routes to stable'));
  }

  /** The canary revision is retired: its trip must not take a retried rollout off. */
  cleared(trip: Trip): void {
    this.pub.hdel(this.tripsKey, canaryKeyText(trip)).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.sub.disconnect();
    this.pub.disconnect();
  }

  private async catchUp(): Promise<void> {
    try {
      const all = await this.pub.hgetall(this.tripsKey);
      for (const text of Object.values(all)) this.receive(text, 'stored');
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'guardrail peer sync: cannot read stored trips');
    }
  }

  private receive(text: string, how: 'published' | 'stored'): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const trip = tripSchema.safeParse(parsed);
    if (!trip.success) {
      this.logger.warn({ channel: this.channel, how, text: text.slice(0, 200) }, 'guardrail peer sync: ignoring a malformed trip message');
      return;
    }
    this.apply(trip.data);
  }
}
