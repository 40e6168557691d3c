/**
 * The pairwise judge's preferences of one rollout, kept for `fledge shadow-report`: a capped
 * Redis list per service and candidate rollout hash (newest first), beside the pair log.
 * Written by the judge worker, one record per judged pair: which answer won (or tie) and
 * whether the two orders disagreed. No text, no prompt, no judge reason.
 */
import type { Redis } from 'ioredis';
import type { Preference } from '../quality/judge/pairwise-preference.js';
import { appendCapped, readCapped, type CappedLogOptions } from './capped-log.js';
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
    private readonly options: CappedLogOptions & { prefix?: string } = {},
  ) {}

  async append(service: string, rolloutHash: string, record: PreferenceRecord): Promise<void> {
    await appendCapped(this.redis, preferenceLogKey(service, rolloutHash, this.options.prefix), record, this.options);
  }

  /** One rollout's preferences, newest first; entries that are not a preference record are skipped and counted. */
  read(service: string, rolloutHash: string): Promise<{ records: PreferenceRecord[]; unreadable: number }> {
    return readCapped(this.redis, preferenceLogKey(service, rolloutHash, this.options.prefix), asPreferenceRecord);
  }
}

function asPreferenceRecord(value: unknown): PreferenceRecord | undefined {
  const r = value as Partial<PreferenceRecord> | null;
  const ok = r !== null && typeof r === 'object' && (r.pair === 'candidate' || r.pair === 'noise') && (r.preferred === 'stable' || r.preferred === 'candidate' || r.preferred === 'tie') && typeof r.inconsistent === 'boolean';
  return ok ? (r as PreferenceRecord) : undefined;
}
