/**
 * Istio in the loop, measured on this machine: a real kube-apiserver, istiod and an ingress
 * gateway Envoy launched by pilot-agent (test/harness/istio.ts), with the example Gateway,
 * Service, DestinationRule and VirtualService applied.
 * - stack_start_s: istiod + gateway from cold start until istiod reports the gateway's
 *   listeners ACKed (kube-apiserver already running);
 * - vs_to_proxy_ms_p50/p99: a VirtualService weight write (PATCH returned) until the gateway
 *   Envoy's own config dump carries the new weight, over 20 writes at istiod's default
 *   debounce (PILOT_DEBOUNCE_AFTER=100ms);
 * - verify_ms_p50/p99: the same writes until the controller's istiod verifier confirms them
 *   (istiod pushed the weight and the gateway ACKed it).
 * Writes bench/results/istio.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { IstiodWeightVerifier } from '../controller/traffic/istio/istiod-weight-verifier.js';
import { routeWeights } from '../controller/traffic/istio/route-weights.js';
import { exampleManifests, workloadEntry } from '../test/harness/istio-mesh.js';
import { startIstio } from '../test/harness/istio.js';
import { startKube } from '../test/harness/kube.js';

const root = resolve(import.meta.dirname, '..', '..');
const WRITES = 20;
const VS = { namespace: 'models', name: 'chat', stableSubset: 'v1', canarySubset: 'v2' };

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}
const round = (n: number) => Math.round(n * 10) / 10;

async function main(): Promise<void> {
  const kube = await startKube({ istioCrds: 'all' });
  try {
    const istio = await startIstio(kube);
    try {
      await kube.apply(exampleManifests());
      for (const v of ['v1', 'v2']) await kube.apply(workloadEntry('models', `chat-${v}`, { app: 'chat', version: v }, { http: 9 }));
      await istio.gateway.waitForListener(60_000);

      const custom = kube.adminKubeConfig.makeApiClient(CustomObjectsApi);
      const verifier = new IstiodWeightVerifier({ debugUrl: istio.istiodHttpUrl, pollMs: 5 });
      const envoyWeight = async () => routeWeights(await istio.gateway.configDump('dynamic_route_configs'), VS).canaryWeights;
      const toProxy: number[] = [];
      const toVerified: number[] = [];
      for (let i = 0; i < WRITES; i++) {
        const weight = ((i % 9) + 1) * 10 + (i % 2); // every write a new value, 10..91
        const vs = (await custom.getNamespacedCustomObject({ group: 'networking.istio.io', version: 'v1', plural: 'virtualservices', namespace: VS.namespace, name: VS.name })) as { spec: { http: { route?: { destination: { subset: string }; weight?: number }[] }[] } };
        const index = vs.spec.http.findIndex((h) => (h.route ?? []).length === 2);
        const patch = [
          { op: 'replace', path: `/spec/http/${index}/route/0/weight`, value: 100 - weight },
          { op: 'replace', path: `/spec/http/${index}/route/1/weight`, value: weight },
        ];
        await custom.patchNamespacedCustomObject({ group: 'networking.istio.io', version: 'v1', plural: 'virtualservices', namespace: VS.namespace, name: VS.name, body: patch }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
        const written = performance.now();
        const verified = verifier.waitForWeight({ ...VS, weight }).then((r) => {
          if (!r.verified) throw new Error(`verifier did not confirm weight ${weight}: ${r.detail}`);
          return performance.now() - written;
        });
        const deadline = Date.now() + 30_000;
        for (;;) {
          const weights = await envoyWeight();
          if (weights.length > 0 && weights.every((w) => w === weight)) break;
          if (Date.now() > deadline) throw new Error(`weight ${weight} did not reach the gateway within 30 s (has ${weights.join(',')})`);
          await new Promise((r) => setTimeout(r, 5));
        }
        toProxy.push(performance.now() - written);
        toVerified.push(await verified);
        // Let istiod's debounce settle so each write is measured on its own.
        await new Promise((r) => setTimeout(r, 300));
      }
      toProxy.sort((a, b) => a - b);
      toVerified.sort((a, b) => a - b);
      const result = {
        vs_to_proxy_ms_p50: round(quantile(toProxy, 0.5)),
        vs_to_proxy_ms_p99: round(quantile(toProxy, 0.99)),
        verify_ms_p50: round(quantile(toVerified, 0.5)),
        verify_ms_p99: round(quantile(toVerified, 0.99)),
        writes: WRITES,
        stack_start_s: round(istio.startMs / 1000),
      };
      const out = join(root, 'bench', 'results');
      mkdirSync(out, { recursive: true });
      writeFileSync(join(out, 'istio.json'), `${JSON.stringify(result, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.stdout.write(`detail: to proxy ms ${toProxy.map((t) => t.toFixed(0)).join(', ')}; verified ms ${toVerified.map((t) => t.toFixed(0)).join(', ')}\n`);
    } finally {
      await istio.stop();
    }
  } finally {
    await kube.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`istio bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
