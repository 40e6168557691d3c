import MurmurHash3 from 'imurmurhash';

/** Buckets per rollout: weights are honoured to 0.01 percent. */
export const BUCKETS = 10_000;

/**
 * A user's bucket for a service, stable for the user's lifetime: murmur3 of
 * "service/user". The canary takes buckets [0, weight x 100), so raising the weight only
 * moves users from stable to canary, never back.
 */
export function stickyBucket(service: string, user: string): number {
  // Hashed in pieces (the same murmur3 as of the joined string): no string built per request.
  return MurmurHash3(service).hash('/').hash(user).result() % BUCKETS;
}

export function isCanaryBucket(bucket: number, canaryWeight: number): boolean {
  return bucket < Math.round(canaryWeight * 100);
}
