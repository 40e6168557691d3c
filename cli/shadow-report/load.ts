/**
 * Reads one rollout's shadow pairs from Redis for the report: the rollout asked for, else
 * the one whose newest pair is newest, with the service's other rollouts listed. Errors say
 * what to check (the Redis URL, whether a shadow step runs, whether capture is on).
 */
import { Redis } from 'ioredis';
import { pairLogKey, ShadowPairLog, type ShadowPairRecord } from '../../extproc/shadow/pair-log.js';
import { PreferenceLog, type PreferenceRecord } from '../../extproc/shadow/preference-log.js';

export interface LoadedPairs {
  rolloutHash: string;
  otherRollouts: string[];
  records: ShadowPairRecord[];
  unreadable: number;
  /** The pairwise judge's preferences of the chosen rollout (empty without a judge). */
  preferences: PreferenceRecord[];
  preferencesUnreadable: number;
}

/** How long to wait for Redis before saying it is unreachable. */
const CONNECT_TIMEOUT_MS = 3000;

export async function loadShadowPairs(redisUrl: string, service: string, rolloutHash: string | undefined): Promise<LoadedPairs> {
  // No retries and no offline queue: an unreachable Redis is an error now, not a hang.
  const redis = new Redis(redisUrl, { lazyConnect: true, connectTimeout: CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  // ioredis reports the socket's error (ECONNREFUSED…) as an event and rejects connect() with a vaguer one.
  let socketError: Error | undefined;
  redis.on('error', (err: Error) => (socketError ??= err));
  try {
    try {
      await redis.connect();
    } catch (err) {
      const reason = (socketError ?? (err as Error)).message || String(err);
      throw new Error(`cannot reach Redis at ${redisUrl}: ${reason} (is the stack up? name another with --redis URL or --stack FILE)`);
    }
    const log = new ShadowPairLog(redis);
    const rollouts = await log.rollouts(service);
    const where = `in Redis at ${redisUrl}`;
    if (rollouts.length === 0) {
      throw new Error(
        `no shadow pairs for service "${service}" ${where}: check that a shadow step is running for it (fledge status) and that extproc's shadow capture is on (docs/shadow.md), and that the service name is the one in the routing config`,
      );
    }
    if (rolloutHash !== undefined && !rollouts.includes(rolloutHash)) {
      throw new Error(`no shadow pairs for service "${service}" rollout ${rolloutHash} ${where}; rollouts with pairs: ${rollouts.join(', ')}`);
    }
    const chosen = rolloutHash ?? (await newestRollout(redis, service, rollouts));
    const { records, unreadable } = await log.read(service, chosen);
    if (records.length === 0) throw new Error(`the shadow log of service "${service}" rollout ${chosen} ${where} holds no readable pair (${unreadable} unreadable entries)`);
    const preferences = await new PreferenceLog(redis).read(service, chosen);
    return { rolloutHash: chosen, otherRollouts: rollouts.filter((r) => r !== chosen), records, unreadable, preferences: preferences.records, preferencesUnreadable: preferences.unreadable };
  } finally {
    redis.disconnect();
  }
}

/** The rollout whose newest pair (the head of its list) is the most recent. */
async function newestRollout(redis: Redis, service: string, rollouts: string[]): Promise<string> {
  let best = rollouts[0]!;
  let bestAt = -Infinity;
  for (const hash of rollouts) {
    const head = await redis.lindex(pairLogKey(service, hash), 0);
    const at = head ? atOf(head) : -Infinity;
    if (at > bestAt) {
      best = hash;
      bestAt = at;
    }
  }
  return best;
}

function atOf(entry: string): number {
  try {
    const at = (JSON.parse(entry) as { at?: unknown }).at;
    return typeof at === 'number' ? at : -Infinity;
  } catch {
    return -Infinity;
  }
}
