/**
 * The compared pairs of one rollout, kept for `fledge shadow-report`: a capped Redis list
 * per service and candidate rollout hash (newest first), each entry the two answers'
 * features (no text, no prompt) and their comparison. The cap and a TTL bound its memory;
 * the metrics, not this log, are what gates the rollout.
 */
import type { Redis } from 'ioredis';
import { appendCapped, readCapped, type CappedLogOptions } from './capped-log.js';
import type { AnswerFeatures } from './answer-features.js';
import { comparePair, type PairComparison } from './pair-comparison.js';
import type { PairKind, ShadowPair } from './pair-store.js';

/** Features without the similarity signature: the comparison already holds the similarity. */
export type RecordedAnswer = Omit<AnswerFeatures, 'signature'>;

export interface ShadowPairRecord {
  /** Unix ms when the pair was completed. */
  at: number;
  requestId: string;
  kind: PairKind;
  service: string;
  /** The candidate under shadow (also on noise pairs: the rollout they belong to). */
  version: string;
  rolloutHash: string;
  stable: RecordedAnswer;
  /** The candidate's answer (kind candidate) or the stable's second answer (kind noise). */
  other: RecordedAnswer;
  comparison: PairComparison;
}

export interface PairLogOptions extends CappedLogOptions {
  prefix?: string;
}

export function pairLogKey(service: string, rolloutHash: string, prefix = 'fledge:shadow-log'): string {
  return `${prefix}:${service}:${rolloutHash}`;
}

/** The record of one pair; `comparison` when the caller has already compared it (the metrics do). */
export function toRecord(pair: ShadowPair, labels: { service: string; version: string; rolloutHash: string }, at: number, comparison = comparePair(pair.stable, pair.other)): ShadowPairRecord {
  const { signature: _s, ...stable } = pair.stable;
  const { signature: _o, ...other } = pair.other;
  return { at, requestId: pair.requestId, kind: pair.kind, ...labels, stable, other, comparison };
}

export class ShadowPairLog {
  constructor(
    private readonly redis: Redis,
    private readonly options: PairLogOptions = {},
  ) {}

  async append(record: ShadowPairRecord): Promise<void> {
    await appendCapped(this.redis, pairLogKey(record.service, record.rolloutHash, this.options.prefix), record, this.options);
  }

  /** The pairs of one rollout, newest first; entries that do not parse are skipped and counted. */
  read(service: string, rolloutHash: string): Promise<{ records: ShadowPairRecord[]; unreadable: number }> {
    return readCapped(this.redis, pairLogKey(service, rolloutHash, this.options.prefix), (value) => value as ShadowPairRecord);
  }

  /** Rollout hashes with a log for this service (for a report that is not told which one). */
  async rollouts(service: string): Promise<string[]> {
    const prefix = pairLogKey(service, '', this.options.prefix);
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 200);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    return keys.map((k) => k.slice(prefix.length)).sort();
  }
}
