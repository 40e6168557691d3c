/**
 * A capped, expiring Redis list of JSON records, newest first: what the shadow pair log and
 * the pairwise judge's preference log keep per rollout for `fledge shadow-report`. The cap and
 * the TTL bound its memory; an entry that does not parse is skipped and counted on reading.
 */
import type { Redis } from 'ioredis';

export const DEFAULT_LOG_CAP = 5000;
export const DEFAULT_LOG_TTL_SECONDS = 7 * 24 * 3600;

export interface CappedLogOptions {
  cap?: number;
  ttlSeconds?: number;
}

export async function appendCapped(redis: Redis, key: string, record: unknown, options: CappedLogOptions = {}): Promise<void> {
  await redis
    .multi()
    .lpush(key, JSON.stringify(record))
    .ltrim(key, 0, (options.cap ?? DEFAULT_LOG_CAP) - 1)
    .expire(key, options.ttlSeconds ?? DEFAULT_LOG_TTL_SECONDS)
    .exec();
}

/** The list's records, newest first; `parse` returns undefined for an entry that is not one. */
export async function readCapped<T>(redis: Redis, key: string, parse: (value: unknown) => T | undefined): Promise<{ records: T[]; unreadable: number }> {
  const records: T[] = [];
  let unreadable = 0;
  for (const entry of await redis.lrange(key, 0, -1)) {
    let record: T | undefined;
    try {
      record = parse(JSON.parse(entry));
    } catch {
      record = undefined;
    }
    if (record === undefined) unreadable++;
    else records.push(record);
  }
  return { records, unreadable };
}
