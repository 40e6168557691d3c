import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { OpenFeature } from '@openfeature/server-sdk';
import { pino } from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { FlagOutcomeCache } from '../../extproc/flags/flag-outcome-cache.js';
import { FlagdFileProvider } from '../../extproc/flags/flagd-file-provider.js';
import { VersionFlags } from '../../extproc/flags/version-flags.js';

const SEED = JSON.parse(readFileSync(resolve(import.meta.dirname, '../fixtures/seed/flags.json'), 'utf8')) as { flags: Record<string, unknown> };
const VERSION = 'inference-model-version';
const KILL = 'inference-kill-switch';
const VERSIONS = ['v1.2', 'v1.3'];
const KILL_ON = { [KILL]: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' } };

let domains = 0;

/** The real flagd provider over a flag file, behind the cache; counts the evaluations OpenFeature runs (a before hook). */
async function cached(flags: Record<string, unknown>, maxEntries: number) {
  const domain = `flag-cache-${domains++}`;
  const file = join(mkdtempSync(join(tmpdir(), 'fledge-flag-cache-')), 'flags.json');
  writeFileSync(file, JSON.stringify({ flags }));
  const provider = new FlagdFileProvider(file, pino({ level: 'silent' }));
  await OpenFeature.setProviderAndWait(domain, provider);
  const evaluated: string[] = [];
  OpenFeature.addHooks({ before: (hookContext) => void (hookContext.clientMetadata.domain === domain && evaluated.push(hookContext.flagKey)) });
  const flagsOf = new VersionFlags(VERSION, KILL, domain, provider);
  const cache = new FlagOutcomeCache(maxEntries, provider, (ctx, versions) => flagsOf.evaluate(ctx, versions));
  /** Writes new flags and waits until the provider has them in force (a new generation). */
  const rewrite = async (next: Record<string, unknown>) => {
    const before = provider.generation;
    writeFileSync(file, JSON.stringify({ flags: next }));
    await vi.waitFor(() => expect(provider.generation).toBeGreaterThan(before), { timeout: 10_000, interval: 20 });
  };
  return { cache, evaluated, rewrite };
}

describe('flag outcomes are cached per generation and whole context', () => {
  afterAll(() => OpenFeature.close());

  it('the same context twice evaluates OpenFeature once, with the same outcome', async () => {
    const { cache, evaluated } = await cached(SEED.flags, 100);
    const first = await cache.outcome({ targetingKey: 'u1', segment: 'internal', service: 'chat' }, VERSIONS);
    // Attribute order does not matter: the key sorts them.
    const second = await cache.outcome({ service: 'chat', segment: 'internal', targetingKey: 'u1' }, VERSIONS);
    expect(first).toEqual({ flagVersion: 'v1.3', killSwitch: false });
    expect(second).toEqual(first);
    expect(evaluated).toEqual([VERSION]);
  });

  it('another segment, key, service or versions list evaluates again', async () => {
    const { cache, evaluated } = await cached(SEED.flags, 100);
    await cache.outcome({ targetingKey: 'u1', segment: 'internal', service: 'chat' }, VERSIONS);
    expect((await cache.outcome({ targetingKey: 'u1', segment: 'free', service: 'chat' }, VERSIONS)).flagVersion).toBeUndefined();
    await cache.outcome({ targetingKey: 'u2', segment: 'internal', service: 'chat' }, VERSIONS);
    await cache.outcome({ targetingKey: 'u1', segment: 'internal', service: 'summarise' }, VERSIONS);
    await cache.outcome({ targetingKey: 'u1', segment: 'internal', service: 'chat' }, ['v1.3', 'v1.4']);
    // A context without the segment attribute is another context, not the same as an empty segment.
    await cache.outcome({ targetingKey: 'u1', service: 'chat' }, VERSIONS);
    await cache.outcome({ targetingKey: 'u1', segment: '', service: 'chat' }, VERSIONS);
    expect(evaluated).toHaveLength(7);
  });

  it('a new flag-file generation evaluates again, so a kill switch turned on applies to the next lookup', async () => {
    const { cache, evaluated, rewrite } = await cached(SEED.flags, 100);
    const context = { targetingKey: 'u1', segment: 'internal', service: 'chat' };
    expect(await cache.outcome(context, VERSIONS)).toEqual({ flagVersion: 'v1.3', killSwitch: false });
    await rewrite({ ...SEED.flags, ...KILL_ON });
    expect(await cache.outcome(context, VERSIONS)).toEqual({ flagVersion: 'v1.3', killSwitch: true });
    expect(evaluated).toEqual([VERSION, VERSION, KILL]);
    expect(cache.size).toBe(1);
  });

  it('a full cache evicts the least recently used outcome', async () => {
    const { cache, evaluated } = await cached(SEED.flags, 2);
    const user = (key: string) => ({ targetingKey: key, segment: 'beta', service: 'chat' });
    await cache.outcome(user('a'), VERSIONS);
    await cache.outcome(user('b'), VERSIONS);
    await cache.outcome(user('a'), VERSIONS); // a hit: a is now the most recent
    await cache.outcome(user('c'), VERSIONS); // full: b, the oldest, goes
    expect(cache.size).toBe(2);
    expect(evaluated).toHaveLength(3);
    await cache.outcome(user('a'), VERSIONS);
    await cache.outcome(user('c'), VERSIONS);
    expect(evaluated).toHaveLength(3);
    await cache.outcome(user('b'), VERSIONS);
    expect(evaluated).toHaveLength(4);
  });

  it('size 0 evaluates every lookup', async () => {
    const { cache, evaluated } = await cached(SEED.flags, 0);
    for (let i = 0; i < 3; i++) await cache.outcome({ targetingKey: 'u1', segment: 'internal', service: 'chat' }, VERSIONS);
    expect(evaluated).toHaveLength(3);
    expect(cache.size).toBe(0);
  });

  it('flags that target by $flagd.timestamp are evaluated every lookup, as their outcome moves with the clock', async () => {
    const timed = {
      [VERSION]: {
        state: 'ENABLED',
        variants: { 'v1.2': 'v1.2', 'v1.3': 'v1.3' },
        defaultVariant: 'v1.2',
        targeting: { if: [{ '>': [{ var: '$flagd.timestamp' }, 0] }, 'v1.3', 'v1.2'] },
      },
    };
    const { cache, evaluated } = await cached(timed, 100);
    for (let i = 0; i < 3; i++) expect((await cache.outcome({ targetingKey: 'u1', service: 'chat' }, VERSIONS)).flagVersion).toBe('v1.3');
    expect(evaluated).toHaveLength(3);
    expect(cache.size).toBe(0);
  });
});
