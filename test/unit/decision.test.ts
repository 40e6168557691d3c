import { describe, expect, it } from 'vitest';
import { decideVersion, type DecisionInput } from '../../extproc/decision.js';
import MurmurHash3 from 'imurmurhash';
import { sampleBucket } from '../../extproc/quality/sampling.js';
import { stickyBucket, isCanaryBucket, BUCKETS } from '../../extproc/sticky.js';
import { parseAuthority } from '../../extproc/request-context.js';
import type { ServiceRouting } from '../../extproc/routing/state.js';

const state = (over: Partial<ServiceRouting> = {}): ServiceRouting => ({
  service: 'chat',
  stable: 'v1',
  canary: 'v2',
  canaryWeight: 50,
  killed: false,
  rolloutHashes: {},
  ...over,
});
const input = (over: Partial<DecisionInput> = {}): DecisionInput => ({
  state: state(),
  shadow: false,
  userKey: 'alice',
  killSwitch: false,
  flagVersion: undefined,
  random: () => 0.99,
  ...over,
});

describe('decideVersion', () => {
  it('leaves unknown services to Envoy', () => {
    expect(decideVersion(input({ state: undefined }))).toEqual({ version: undefined, reason: 'unknown-service' });
  });

  it('lets the kill switches beat a flag decision', () => {
    expect(decideVersion(input({ state: state({ killed: true }), flagVersion: 'v2' }))).toEqual({ version: 'v1', reason: 'killed' });
    expect(decideVersion(input({ killSwitch: true, flagVersion: 'v2' }))).toEqual({ version: 'v1', reason: 'kill-switch' });
  });

  it('follows a flag that names a version of the service', () => {
    expect(decideVersion(input({ flagVersion: 'v2', state: state({ canaryWeight: 0 }) }))).toEqual({ version: 'v2', reason: 'flag' });
    expect(decideVersion(input({ flagVersion: 'v1', state: state({ canaryWeight: 100 }) }))).toEqual({ version: 'v1', reason: 'flag' });
  });

  it('ignores a flag that names a version this service does not run', () => {
    const d = decideVersion(input({ flagVersion: 'v9', state: state({ canaryWeight: 0 }) }));
    expect(d).toEqual({ version: 'v1', reason: 'sticky' });
  });

  it('sends mirrored requests to the candidate', () => {
    expect(decideVersion(input({ shadow: true, state: state({ killed: true }) }))).toEqual({ version: 'v2', reason: 'shadow' });
  });

  it('routes by bucket at the weight, and by a random draw without a user', () => {
    expect(decideVersion(input({ state: state({ canaryWeight: 100 }) })).version).toBe('v2');
    expect(decideVersion(input({ state: state({ canaryWeight: 0 }) })).version).toBe('v1');
    expect(decideVersion(input({ userKey: undefined, random: () => 0.1 }))).toEqual({ version: 'v2', reason: 'random' });
    expect(decideVersion(input({ userKey: undefined, random: () => 0.6 }))).toEqual({ version: 'v1', reason: 'random' });
  });

  it('serves stable when nothing is rolling out', () => {
    expect(decideVersion(input({ state: state({ canary: undefined }), flagVersion: 'v2' }))).toEqual({ version: 'v1', reason: 'no-canary' });
  });
});

describe('sticky buckets', () => {
  it('are stable, in range, and spread evenly', () => {
    expect(stickyBucket('chat', 'alice')).toBe(stickyBucket('chat', 'alice'));
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 20_000; i++) {
      const b = stickyBucket('chat', `u${i}`);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(BUCKETS);
      counts[Math.floor(b / 1000)]++;
    }
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(200);
  });

  it('differ between services, so one user is not always first everywhere', () => {
    const same = Array.from({ length: 200 }, (_, i) => `u${i}`).filter((u) => stickyBucket('a', u) === stickyBucket('b', u));
    expect(same.length).toBeLessThan(5);
  });

  it('only move users toward the canary as the weight rises', () => {
    for (let b = 0; b < BUCKETS; b += 37) {
      if (isCanaryBucket(b, 10)) expect(isCanaryBucket(b, 25)).toBe(true);
    }
    expect(isCanaryBucket(999, 10)).toBe(true);
    expect(isCanaryBucket(1000, 10)).toBe(false);
    expect(isCanaryBucket(0, 0)).toBe(false);
    expect(isCanaryBucket(9999, 100)).toBe(true);
  });
});

describe('parseAuthority', () => {
  it('strips the port and recognises mirrored copies', () => {
    expect(parseAuthority('Chat:10000')).toEqual({ host: 'chat', shadow: false });
    expect(parseAuthority('chat-shadow:10000')).toEqual({ host: 'chat', shadow: true });
    expect(parseAuthority('chat:10000-shadow')).toEqual({ host: 'chat', shadow: true });
    expect(parseAuthority('[::1]:8080')).toEqual({ host: '[::1]', shadow: false });
  });
});

describe('bucket hashes are murmur3 of the joined key (what docs and tests predict)', () => {
  it('hashes service/user and sample/request-id in pieces with the same result, any length or alphabet', () => {
    const keys = ['alice', 'u1', 'bench-user-999', 'ünïcødé-user', '用户', 'x'.repeat(37), ''];
    for (const user of keys) {
      for (const service of ['chat', 'a', 'svc-with-odd-len']) expect(stickyBucket(service, user)).toBe(MurmurHash3(`${service}/${user}`).result() % BUCKETS);
      expect(sampleBucket(user)).toBe(MurmurHash3(`sample/${user}`).result() % BUCKETS);
    }
  });
});
