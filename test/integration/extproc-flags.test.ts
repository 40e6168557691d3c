import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataPlane } from '../harness/dataplane.js';
import { mapLimit } from '../harness/http-client.js';

const seedFlags = readFileSync(resolve(import.meta.dirname, '../fixtures/seed/flags.json'), 'utf8');
const users = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('the seed flag through Envoy', () => {
  const dp = new DataPlane();
  beforeAll(async () => {
    await dp.start([{ name: 'chat', stable: 'v1.2', canary: 'v1.3', canaryWeight: 0, rolloutHashes: { 'v1.2': 'h12', 'v1.3': 'h13' } }], seedFlags);
  });
  afterAll(() => dp.stop());

  it('sends internal users to the new version', async () => {
    // Answers Envoy failed open on (extproc past 200 ms on a busy machine) are accounted for by dp.decided.
    const { answers: all, decided } = await dp.decided(users('staff', 50), (user) => dp.request({ host: 'chat', user, segment: 'internal' }));
    const answers = all.filter((_, i) => decided[i]);
    expect(answers.length).toBeGreaterThan(25);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.servedBy).toBe('v1.3');
      expect(a.headers['x-fledge-version']).toBe('v1.3');
      expect(a.headers['x-fledge-reason']).toBe('flag');
    }
  });

  it('splits beta users about 50/50 by user, and each stays put', async () => {
    const beta = users('beta', 400);
    const first = await dp.decided(beta, (user) => dp.request({ host: 'chat', user, segment: 'beta' }));
    const decidedFirst = first.answers.filter((_, i) => first.decided[i]);
    const onNew = decidedFirst.filter((a) => a.servedBy === 'v1.3').length;
    expect(first.answers.every((a) => a.servedBy === 'v1.2' || a.servedBy === 'v1.3')).toBe(true);
    expect(onNew / decidedFirst.length).toBeGreaterThan(0.4);
    expect(onNew / decidedFirst.length).toBeLessThan(0.6);
    const again = await dp.decided(beta, (user) => dp.request({ host: 'chat', user, segment: 'beta' }));
    const both = beta.map((_, i) => i).filter((i) => first.decided[i] && again.decided[i]);
    expect(both.length).toBeGreaterThan(beta.length / 2);
    expect(both.map((i) => again.answers[i]!.servedBy)).toEqual(both.map((i) => first.answers[i]!.servedBy));
  });

  it('keeps everyone else on the old version', async () => {
    const others = await mapLimit(users('anon', 100), 8, (user, i) => dp.request({ host: 'chat', user, segment: i % 2 ? 'free' : undefined }));
    expect(others.every((a) => a.servedBy === 'v1.2')).toBe(true);
  });

  it('does not let a client pick its model with x-fledge-* headers', async () => {
    const spoofed = await mapLimit(users('spoofer', 30), 8, (user) =>
      dp.request({ host: 'chat', user, segment: 'free', headers: { 'x-fledge-version': 'v1.3', 'x-fledge-reason': 'flag', 'x-fledge-anything': '1' } }),
    );
    for (const a of spoofed) {
      expect(a.servedBy).toBe('v1.2');
      expect(a.headers['x-fledge-version']).toBe('v1.2');
    }
  });

  it('applies a changed flag file without a restart, and keeps the last good flags when the file is malformed', async () => {
    const before = (await dp.debugState()).flags!.generation;
    const everyoneNew = JSON.parse(seedFlags) as { flags: Record<string, { targeting: unknown }> };
    everyoneNew.flags['inference-model-version']!.targeting = { if: [{ '!!': [{ var: 'targetingKey' }] }, 'v1.3', null] };
    writeFileSync(dp.flagsFile, JSON.stringify(everyoneNew));
    const seenAfterMs = await dp.waitForState((s) => s.flags!.generation > before, 10_000);
    expect(seenAfterMs).toBeLessThan(10_000);
    const switched = await mapLimit(users('anon', 20), 8, (user) => dp.request({ host: 'chat', user }));
    expect(switched.every((a) => a.servedBy === 'v1.3')).toBe(true);

    writeFileSync(dp.flagsFile, '{"flags": {"inference-model-version": {"state": "ENABLED", "variants": ');
    await dp.waitForState((s) => s.flags!.lastError !== null, 10_000);
    const log = await dp.waitForLog(/rejected a bad version of the file/);
    expect(log).toContain(dp.flagsFile);
    const stillNew = await mapLimit(users('anon', 20), 8, (user) => dp.request({ host: 'chat', user }));
    expect(stillNew.every((a) => a.servedBy === 'v1.3')).toBe(true);

    // Valid JSON that breaks flagd's schema is rejected too, naming the field.
    writeFileSync(dp.flagsFile, JSON.stringify({ flags: { 'inference-model-version': { state: 'ON', variants: { a: 'v1.2' }, defaultVariant: 'a' } } }));
    await dp.waitForState((s) => (s.flags!.lastError ?? '').includes('inference-model-version.state'), 10_000);
    const stillNew2 = await dp.request({ host: 'chat', user: 'anon-1' });
    expect(stillNew2.servedBy).toBe('v1.3');

    writeFileSync(dp.flagsFile, seedFlags);
    await dp.waitForState((s) => s.flags!.lastError === null, 10_000);
  });

  it('moves everyone to stable when the kill-switch flag turns on, on the very next request despite cached flag outcomes', async () => {
    const staff = users('staff', 30);
    // These users' flag outcomes are now cached (flags.cacheSize, default 10,000) for the flags in force.
    const warm = await dp.decided(staff, (user) => dp.request({ host: 'chat', user, segment: 'internal' }));
    const warmDecided = warm.answers.filter((_, i) => warm.decided[i]);
    expect(warmDecided.length).toBeGreaterThan(15);
    for (const a of warmDecided) expect(a.headers['x-fledge-reason']).toBe('flag');
    const withKill = JSON.parse(seedFlags) as { flags: Record<string, unknown> };
    withKill.flags['inference-kill-switch'] = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };
    const before = (await dp.debugState()).flags!.generation;
    writeFileSync(dp.flagsFile, JSON.stringify(withKill));
    await dp.waitForState((s) => s.flags!.generation > before);
    const killed = await dp.decided(staff, (user) => dp.request({ host: 'chat', user, segment: 'internal' }));
    // Every request on stable: decided ones by the kill switch, failed-open ones by the weighted route (canary weight 0).
    killed.answers.forEach((a, i) => {
      expect(a.servedBy).toBe('v1.2');
      if (killed.decided[i]) expect(a.headers['x-fledge-reason']).toBe('kill-switch');
    });
    writeFileSync(dp.flagsFile, seedFlags);
    await dp.waitForState((s) => s.flags!.generation > before + 1);
    // And back: the killed outcomes cached for the kill-switch generation are not served either.
    const back = await dp.decided(staff, (user) => dp.request({ host: 'chat', user, segment: 'internal' }));
    back.answers.forEach((a, i) => {
      if (back.decided[i]) expect([a.servedBy, a.headers['x-fledge-reason']]).toEqual(['v1.3', 'flag']);
    });
    expect(back.decided.filter(Boolean).length).toBeGreaterThan(15);
  });
});

describe("the seed's flag file and a rollout at weight 20 combine (issue 9 item 5)", () => {
  const dp = new DataPlane();
  beforeAll(async () => {
    await dp.start([{ name: 'chat', stable: 'v1.2', canary: 'v1.3', canaryWeight: 20 }], seedFlags);
  });
  afterAll(() => dp.stop());

  it('ordinary users reach the canary at ≈20% by weight, internal users are on v1.3, beta users by the rule', async () => {
    const population = [...users('free', 1000).map((user) => ({ user, segment: 'free' })), ...users('staff', 100).map((user) => ({ user, segment: 'internal' })), ...users('beta', 600).map((user) => ({ user, segment: 'beta' }))];
    const sent = await dp.decided(population, (p) => dp.request({ host: 'chat', user: p.user, segment: p.segment }));
    expect(sent.answers.filter((a) => a.status !== 200).map((a) => a.status)).toEqual([]);
    // extproc's decisions (answers Envoy failed open on follow the weighted route; dp.decided accounts for them).
    const mineDecided = (segment: string) => sent.answers.filter((_, i) => sent.decided[i] && population[i]!.segment === segment);
    const share = (segment: string) => {
      const mine = mineDecided(segment);
      expect(mine.length).toBeGreaterThan(0);
      return (100 * mine.filter((a) => a.servedBy === 'v1.3').length) / mine.length;
    };
    const reasons = (segment: string) => new Set(mineDecided(segment).map((a) => a.headers['x-fledge-reason']));
    // The targeting's final "v1.2" is the flag's default variant: it leaves ordinary users to the weight.
    expect(Math.abs(share('free') - 20)).toBeLessThanOrEqual(4);
    expect(reasons('free')).toEqual(new Set(['sticky']));
    expect(share('internal')).toBe(100);
    expect(reasons('internal')).toEqual(new Set(['flag']));
    // Beta: the fractional's v1.3 half by flag, the v1.2 half (the default) by weight: 50% + 50% × 20% = 60%.
    expect(Math.abs(share('beta') - 60)).toBeLessThanOrEqual(6);
    expect(reasons('beta')).toEqual(new Set(['flag', 'sticky']));
  });
});
