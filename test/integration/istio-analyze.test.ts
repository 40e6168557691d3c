// What Istio itself says about fledge's manifests: `istioctl analyze -A` (all namespaces;
// without -A it checks only "default") over every file in manifests/, offline. Each message
// it still prints must be allow-listed here with its reason and explained in
// docs/cluster-mode.md; anything else fails the test.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { istioBinaries } from '../harness/istio.js';

const run = promisify(execFile);
const MANIFESTS = resolve(import.meta.dirname, '../../manifests');
const files = [
  ...readdirSync(MANIFESTS).filter((f) => f.endsWith('.yaml')).map((f) => join(MANIFESTS, f)),
  ...readdirSync(join(MANIFESTS, 'example')).filter((f) => f.endsWith('.yaml')).map((f) => join(MANIFESTS, 'example', f)),
];

interface AnalyzerMessage {
  code: string;
  level: string;
  message: string;
  origin: string;
}

/** Messages that are expected of manifests analysed without a cluster; each is explained in docs/cluster-mode.md. */
const ALLOWED: { code: string; origin: RegExp; reason: string }[] = [
  {
    code: 'IST0133',
    origin: /^EnvoyFilter istio-system\/fledge-extproc-(gateway|gateway-uds|sidecar-outbound)$/,
    // Istio warns on every EnvoyFilter; no other Istio API puts an ext_proc filter before the router.
    reason: 'every EnvoyFilter is flagged as exposing Envoy internals; fledge needs one to add ext_proc',
  },
];

async function analyze(paths: string[]): Promise<AnalyzerMessage[]> {
  const { istioctl } = istioBinaries();
  // Exit code 79 = issues found at or above --failure-threshold; the JSON is printed either way.
  const result = await run(istioctl, ['analyze', '-A', '--use-kube=false', '-o', 'json', '--failure-threshold', 'Info', ...paths], { maxBuffer: 8 << 20 }).catch((err: { code?: number; stdout?: string; stderr?: string }) => {
    if (err.code === 79 && err.stdout) return { stdout: err.stdout, stderr: err.stderr ?? '' };
    throw new Error(`istioctl analyze failed (exit ${err.code}): ${err.stderr ?? ''}`);
  });
  return JSON.parse(result.stdout) as AnalyzerMessage[];
}

describe('istioctl analyze -A on manifests/', () => {
  it('finds nothing beyond the explained, allow-listed messages', async () => {
    const messages = await analyze(files);
    const unexplained = messages.filter((m) => !ALLOWED.some((a) => a.code === m.code && a.origin.test(m.origin)));
    expect(unexplained.map((m) => `${m.level} [${m.code}] (${m.origin}) ${m.message}`)).toEqual([]);
  });

  it('would catch the EnvoyFilter without priority (the check can fail)', async () => {
    const { readFile, writeFile, mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'fledge-analyze-'));
    try {
      const broken = join(dir, 'envoyfilter.yaml');
      await writeFile(broken, (await readFile(join(MANIFESTS, 'envoyfilter.yaml'), 'utf8')).replace(/^\s*priority: \d+\n/gm, ''));
      const messages = await analyze([broken]);
      expect(messages.filter((m) => m.code === 'IST0151').map((m) => m.origin).sort()).toEqual(['EnvoyFilter istio-system/fledge-extproc-gateway', 'EnvoyFilter istio-system/fledge-extproc-sidecar-outbound']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
