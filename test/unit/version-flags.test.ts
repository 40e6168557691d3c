import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { OpenFeature } from '@openfeature/server-sdk';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlagdFileProvider } from '../../extproc/flags/flagd-file-provider.js';
import { VersionFlags } from '../../extproc/flags/version-flags.js';

const SEED = JSON.parse(readFileSync(resolve(import.meta.dirname, '../fixtures/seed/flags.json'), 'utf8')) as { flags: Record<string, unknown> };
const KILL = 'inference-kill-switch';

/** The real flagd provider over a flag file; counts the evaluations OpenFeature runs (a before hook). */
async function flagsFrom(domain: string, flags: Record<string, unknown>) {
  const file = join(mkdtempSync(join(tmpdir(), 'fledge-vflags-')), 'flags.json');
  writeFileSync(file, JSON.stringify({ flags }));
  const provider = new FlagdFileProvider(file, pino({ level: 'silent' }));
  await OpenFeature.setProviderAndWait(domain, provider);
  const evaluated: string[] = [];
  // A global hook (a client's own hooks are per client instance), kept to this domain.
  OpenFeature.addHooks({ before: (hookContext) => void (hookContext.clientMetadata.domain === domain && evaluated.push(hookContext.flagKey)) });
  return { flags: new VersionFlags('inference-model-version', KILL, domain, provider), evaluated };
}

describe('flags are evaluated only when they can change the answer', () => {
  let seed: Awaited<ReturnType<typeof flagsFrom>>;
  let killed: Awaited<ReturnType<typeof flagsFrom>>;
  beforeAll(async () => {
    seed = await flagsFrom('vflags-seed', SEED.flags);
    killed = await flagsFrom('vflags-kill', { ...SEED.flags, [KILL]: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' } });
  });
  afterAll(() => OpenFeature.close());

  it("evaluates the version flag for a service whose versions it names, and skips the absent kill switch", async () => {
    seed.evaluated.length = 0;
    expect(await seed.flags.evaluate({ targetingKey: 'a', segment: 'internal' }, ['v1.2', 'v1.3'])).toEqual({ flagVersion: 'v1.3', killSwitch: false });
    expect(seed.evaluated).toEqual(['inference-model-version']);
  });

  it('evaluates nothing for a service none of whose versions the flag can choose, with the same outcome', async () => {
    seed.evaluated.length = 0;
    // v1.2 is the default variant: choosing it is never a flag decision, so a v1.2-only service skips too.
    for (const versions of [['v1', 'v2'], ['v1.2', 'v9']]) {
      expect(await seed.flags.evaluate({ targetingKey: 'a', segment: 'internal' }, versions)).toEqual({ flagVersion: undefined, killSwitch: false });
    }
    expect(seed.evaluated).toEqual([]);
    // Without the versions (no shortcut) the full evaluation agrees: v1.3 is not these services' version.
    expect((await seed.flags.evaluate({ targetingKey: 'a', segment: 'free' })).flagVersion).toBeUndefined();
  });

  it('a kill switch in the file is always evaluated, whatever the versions', async () => {
    killed.evaluated.length = 0;
    expect(await killed.flags.evaluate({ targetingKey: 'a' }, ['v1', 'v2'])).toEqual({ flagVersion: undefined, killSwitch: true });
    expect(killed.evaluated).toEqual([KILL]);
  });
});
