/**
 * The pairwise judge's preferences of one rollout, kept for `fledge shadow-report`: a capped
 * Redis list per service and candidate rollout hash (newest first), beside the pair log.
 * Written by the judge worker, one record per judged pair: which answer won (or tie) and
 * whether the two orders disagreed. No text, no prompt, no judge reason.
 */
import type { Redis } from 'ioredis';
import type { Preference } from '../quality/judge/pairwise-preference.js';
import { DEFAULT_LOG_CAP, DEFAULT_LOG_TTL_SECONDS } from './pair-log.js';
import type { PairKind } from './pair-store.js';

export interface PreferenceRecord {
  /** Unix ms when the judge's second verdict came. */
  at: number;
  requestId: string;
  pair: PairKind;
  preferred: Preference;
  inconsistent: boolean;
}

export function preferenceLogKey(service: string, rolloutHash: string, prefix = 'fledge:shadow-preferences'): string {
  return `${prefix}:${service}:${rolloutHash}`;
}

export class PreferenceLog {
  constructor(
    private readonly redis: Redis,
    private readonly options: { cap?: number; ttlSeconds?: number; prefix?: string } = {},
  ) {}

  async append(service: string, rolloutHash: string, record: PreferenceRecord): Promise<void> {
    const key = preferenceLogKey(service, rolloutHash, this.options.prefix);
    await this.redis
      .multi()
      .lpush(key, JSON.stringify(record))
      .ltrim(key, 0, (this.options.cap ?? DEFAULT_LOG_CAP) - 1)
      .expire(key, this.options.ttlSeconds ?? DEFAULT_LOG_TTL_SECONDS)
      .exec();
  }

  /** One rollout's preferences, newest first; entries that are not a preference record are skipped and counted. */
  async read(service: string, rolloutHash: string): Promise<{ records: PreferenceRecord[]; unreadable: number }> {
    const raw = await this.redis.lrange(preferenceLogKey(service, rolloutHash, this.options.prefix), 0, -1);
    const records: PreferenceRecord[] = [];
    let unreadable = 0;
    for (const entry of raw) {
      const record = parseRecord(entry);
      if (record) records.push(record);
      else unreadable++;
    }
    return { records, unreadable };
  }
}

function parseRecord(entry: string): PreferenceRecord | undefined {
  try {
    const r = JSON.parse(entry) as Partial<PreferenceRecord>;
    const ok = (r.pair === 'candidate' || r.pair === 'noise') && (r.preferred === 'stable' || r.preferred === 'candidate' || r.preferred === 'tie') && typeof r.inconsistent === 'boolean';
    return ok ? (r as PreferenceRecord) : undefined;
  } catch {
    return undefined;
  }
}
