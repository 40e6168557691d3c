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
    const answers = await mapLimit(users('staff', 50), 10, (user) => dp.request({ host: 'chat', user, segment: 'internal' }));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.servedBy).toBe('v1.3');
      expect(a.headers['x-fledge-version']).toBe('v1.3');
      expect(a.headers['x-fledge-reason']).toBe('flag');
    }
  });

  it('splits beta users about 50/50 by user, and each stays put', async () => {
    const beta = users('beta', 400);
    const first = await mapLimit(beta, 20, (user) => dp.request({ host: 'chat', user, segment: 'beta' }));
    const onNew = first.filter((a) => a.servedBy === 'v1.3').length;
    expect(first.every((a) => a.servedBy === 'v1.2' || a.servedBy === 'v1.3')).toBe(true);
    expect(onNew / beta.length).toBeGreaterThan(0.4);
    expect(onNew / beta.length).toBeLessThan(0.6);
    const again = await mapLimit(beta, 20, (user) => dp.request({ host: 'chat', user, segment: 'beta' }));
    expect(again.map((a) => a.servedBy)).toEqual(first.map((a) => a.servedBy));
  });

  it('keeps everyone else on the old version', async () => {
    const others = await mapLimit(users('anon', 100), 10, (user, i) => dp.request({ host: 'chat', user, segment: i % 2 ? 'free' : undefined }));
    expect(others.every((a) => a.servedBy === 'v1.2')).toBe(true);
  });

  it('does not let a client pick its model with x-fledge-* headers', async () => {
    const spoofed = await mapLimit(users('spoofer', 30), 10, (user) =>
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
    const switched = await mapLimit(users('anon', 20), 10, (user) => dp.request({ host: 'chat', user }));
    expect(switched.every((a) => a.servedBy === 'v1.3')).toBe(true);

    writeFileSync(dp.flagsFile, '{"flags": {"inference-model-version": {"state": "ENABLED", "variants": ');
    await dp.waitForState((s) => s.flags!.lastError !== null, 10_000);
    const log = await dp.waitForLog(/rejected a bad version of the file/);
    expect(log).toContain(dp.flagsFile);
    const stillNew = await mapLimit(users('anon', 20), 10, (user) => dp.request({ host: 'chat', user }));
    expect(stillNew.every((a) => a.servedBy === 'v1.3')).toBe(true);

    // Valid JSON that breaks flagd's schema is rejected too, naming the field.
    writeFileSync(dp.flagsFile, JSON.stringify({ flags: { 'inference-model-version': { state: 'ON', variants: { a: 'v1.2' }, defaultVariant: 'a' } } }));
    await dp.waitForState((s) => (s.flags!.lastError ?? '').includes('inference-model-version.state'), 10_000);
    const stillNew2 = await dp.request({ host: 'chat', user: 'anon-1' });
    expect(stillNew2.servedBy).toBe('v1.3');

    writeFileSync(dp.flagsFile, seedFlags);
    await dp.waitForState((s) => s.flags!.lastError === null, 10_000);
  });

  it('moves everyone to stable when the kill-switch flag turns on', async () => {
    const withKill = JSON.parse(seedFlags) as { flags: Record<string, unknown> };
    withKill.flags['inference-kill-switch'] = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };
    const before = (await dp.debugState()).flags!.generation;
    writeFileSync(dp.flagsFile, JSON.stringify(withKill));
    await dp.waitForState((s) => s.flags!.generation > before);
    const killed = await mapLimit(users('staff', 30), 10, (user) => dp.request({ host: 'chat', user, segment: 'internal' }));
    for (const a of killed) {
      expect(a.servedBy).toBe('v1.2');
      expect(a.headers['x-fledge-reason']).toBe('kill-switch');
    }
    writeFileSync(dp.flagsFile, seedFlags);
    await dp.waitForState((s) => s.flags!.generation > before + 1);
  });
});
