// The shadow pair store on a real Redis: two answers of one request meet whatever their
// order, a noise-floor pair is kept apart from the candidate pair, and an unmatched side
// expires.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerFeatures } from '../../extproc/shadow/answer-features.js';
import { ShadowPairStore } from '../../extproc/shadow/pair-store.js';
import { ShadowPairLog, toRecord } from '../../extproc/shadow/pair-log.js';
import { emptyObservation } from '../../extproc/quality/observation.js';
import { freePort } from '../../local/ports.js';
import { startRedis, type RunningRedis } from '../harness/redis.js';

const features = (text: string, latencyMs: number) => answerFeatures({ observation: { ...emptyObservation(), text, textLength: text.length }, status: 200, latencyMs });

describe('ShadowPairStore (real Redis)', () => {
  let redis: RunningRedis;
  let client: Redis;

  beforeAll(async () => {
    redis = await startRedis({ port: await freePort() });
    client = new Redis(redis.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it('pairs the stable and candidate answers in either order, across two store instances (two replicas), and leaves nothing behind', async () => {
    const a = new ShadowPairStore(client, { service: 'chat' });
    const b = new ShadowPairStore(new Redis(redis.url), { service: 'chat' });
    expect(await a.record('req-1', 'stable', features('Paris', 100))).toEqual([]);
    const [pair] = await b.record('req-1', 'candidate', features('Lyon', 300));
    expect(pair).toMatchObject({ kind: 'candidate', requestId: 'req-1', stable: { latencyMs: 100 }, other: { latencyMs: 300 } });

    expect(await b.record('req-2', 'candidate', features('Lyon', 300))).toEqual([]);
    expect((await a.record('req-2', 'stable', features('Paris', 100)))[0]?.stable.latencyMs).toBe(100);
    expect(await client.keys('fledge:shadow:chat:*')).toEqual([]);
  });

  it("the stable answer meets both the candidate and the stable's second answer (noise floor), each pair once", async () => {
    const store = new ShadowPairStore(client, { service: 'noise' });
    expect(await store.record('req-3', 'stable-again', features('Paris', 90))).toEqual([]);
    const first = await store.record('req-3', 'stable', features('Paris', 100), true);
    expect(first.map((p) => [p.kind, p.stable.latencyMs, p.other.latencyMs])).toEqual([['noise', 100, 90]]);
    const second = await store.record('req-3', 'candidate', features('Lyon', 300));
    expect(second.map((p) => [p.kind, p.stable.latencyMs, p.other.latencyMs])).toEqual([['candidate', 100, 300]]);
    // Without withNoise the stable side waits for no second answer.
    await store.record('req-5', 'stable', features('Paris', 100));
    expect(await store.record('req-5', 'stable-again', features('Paris', 90))).toEqual([]);
  });

  it('a side whose partner never comes expires after the TTL', async () => {
    const store = new ShadowPairStore(client, { service: 'ttl', ttlSeconds: 1 });
    await store.record('req-4', 'stable', features('Paris', 100));
    const key = (await client.keys('fledge:shadow:ttl:*'))[0]!;
    expect(await client.ttl(key)).toBeGreaterThan(0);
    expect(await client.ttl(key)).toBeLessThanOrEqual(1);
  });

  it('with the pairwise judge on, a side holds its text under its own key and TTL only, and the pair (and its log record) carry none once made', async () => {
    const store = new ShadowPairStore(client, { service: 'text', ttlSeconds: 5 });
    await store.record('req-6', 'stable', features('Paris', 100), false, { answer: 'Paris', prompt: 'Capital of France?' });
    const [key] = await client.keys('fledge:shadow:text:*');
    expect(JSON.parse((await client.get(key!))!)).toMatchObject({ judgeText: { answer: 'Paris', prompt: 'Capital of France?' } });
    expect(await client.ttl(key!)).toBeLessThanOrEqual(5);
    const [pair] = await store.record('req-6', 'candidate', features('Lyon', 300), false, { answer: 'Lyon' });
    expect(pair!.text).toEqual({ stable: { answer: 'Paris', prompt: 'Capital of France?' }, other: { answer: 'Lyon' } });
    expect(pair!.stable).not.toHaveProperty('judgeText');
    expect(JSON.stringify(toRecord(pair!, { service: 'text', version: 'v2', rolloutHash: 'h2' }, 1))).not.toMatch(/Paris|Lyon|Capital/);
    expect(await client.keys('fledge:shadow:text:*')).toEqual([]);
    // Without text (the judge off) a side is features only.
    await store.record('req-7', 'stable', features('Paris', 100));
    expect(Object.keys(JSON.parse((await client.get((await client.keys('fledge:shadow:text:*'))[0]!))!))).not.toContain('judgeText');
  });

  it('the pair log keeps the newest pairs of one rollout up to its cap, without the signatures', async () => {
    const log = new ShadowPairLog(client, { cap: 3 });
    const labels = { service: 'log', version: 'v2', rolloutHash: 'h2' };
    for (let i = 0; i < 5; i++) {
      await log.append(toRecord({ kind: i % 2 ? 'noise' : 'candidate', requestId: `r${i}`, stable: features('Paris is the capital', 100), other: features('Lyon is the capital', 100 + i) }, labels, i));
    }
    await client.lpush('fledge:shadow-log:log:h2', '{not json');
    const { records, unreadable } = await log.read('log', 'h2');
    expect(unreadable).toBe(1);
    expect(records.map((r) => r.requestId)).toEqual(['r4', 'r3', 'r2']);
    expect(records[0]!.comparison.latencyDeltaMs).toBe(4);
    expect(records[0]!.comparison.similarity).toBeLessThan(1);
    expect(records[0]!.stable).not.toHaveProperty('signature');
    expect(await log.rollouts('log')).toEqual(['h2']);
    expect(await client.ttl('fledge:shadow-log:log:h2')).toBeGreaterThan(3600);
  });
});
