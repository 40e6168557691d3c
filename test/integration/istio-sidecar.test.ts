// The outbound EnvoyFilter (fledge-extproc-sidecar-outbound) against real istiod: two
// sidecar-mode Envoys, launched by pilot-agent `proxy sidecar` as in a pod of namespace
// models, one labelled fledge.dev/extproc: enabled (what the EnvoyFilter's workloadSelector
// matches) and one not. Their config is read from each Envoy's admin /config_dump. Then
// Sidecar resources scope the labelled caller's egress, and for each the offline check of
// `fledge validate` (cli/sidecar-scoping.ts) is run on the same resources: it must warn
// exactly when istiod leaves the ext_proc cluster out of the proxy that has the filter.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { fledgeCli } from '../../local/package-paths.js';
import { startIstio, type EnvoyConfigDump, type IstioHarness, type RunningSidecar } from '../harness/istio.js';
import { exampleManifests, manifest, MANIFESTS } from '../harness/istio-mesh.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { waitUntil } from '../harness/rollout-fixture.js';

const EXTPROC_HOST = 'fledge-extproc.fledge-system.svc.cluster.local';
const EXTPROC_CLUSTER = `outbound|50051||${EXTPROC_HOST}`;
const CALLER_NAMESPACE = 'models';
/** The model Service (manifests/example/service.yaml) is HTTP on port 80: sidecars route it in the outbound listener 0.0.0.0_80. */
const MODEL_LISTENER = '0.0.0.0_80';

interface HttpFilter {
  name: string;
  typed_config?: { grpc_service?: { envoy_grpc?: { cluster_name: string; authority?: string } } };
}
interface DumpedListener {
  name?: string;
  bind_to_port?: boolean | null;
  filter_chains?: { filters?: { name: string; typed_config?: { http_filters?: HttpFilter[] } }[] }[];
}
interface DumpedCluster {
  name?: string;
  typed_extension_protocol_options?: Record<string, { explicit_http_config?: { http2_protocol_options?: unknown }; common_http_protocol_options?: { max_requests_per_connection?: number } }>;
}

/** The HTTP filters of a listener's HTTP connection managers (every filter chain's, in order). */
async function httpFilters(proxy: RunningSidecar, listenerName: string): Promise<HttpFilter[][] | undefined> {
  const listeners = (await proxy.configDump('dynamic_listeners')).configs as { active_state?: { listener?: DumpedListener } }[];
  const listener = listeners.map((l) => l.active_state?.listener).find((l) => l?.name === listenerName);
  if (!listener) return undefined;
  return (listener.filter_chains ?? []).flatMap((fc) => (fc.filters ?? []).filter((f) => f.name === 'envoy.filters.network.http_connection_manager').map((f) => f.typed_config?.http_filters ?? []));
}

async function extprocCluster(proxy: RunningSidecar): Promise<DumpedCluster | undefined> {
  const clusters = ((await proxy.configDump('dynamic_active_clusters')) as EnvoyConfigDump).configs as { cluster?: DumpedCluster }[];
  return clusters.map((c) => c.cluster).find((c) => c?.name === EXTPROC_CLUSTER);
}

function sidecarResource(spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'scope', namespace: CALLER_NAMESPACE }, spec };
}

describe('the outbound EnvoyFilter in sidecars configured by real istiod', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-istio-sidecar-'));
  let kube: KubeHarness;
  let istio: IstioHarness;
  let caller: RunningSidecar;
  let unlabelled: RunningSidecar;

  beforeAll(async () => {
    kube = await startKube({ istioCrds: 'all' });
    istio = await startIstio(kube);
    for (const file of ['rbac.yaml', 'extproc.yaml', 'envoyfilter.yaml']) await kube.apply(manifest(file));
    await kube.apply(exampleManifests());
    [caller, unlabelled] = await Promise.all([
      istio.startSidecar({ podName: 'caller-0', namespace: CALLER_NAMESPACE, labels: { app: 'caller', 'fledge.dev/extproc': 'enabled' } }),
      istio.startSidecar({ podName: 'batch-0', namespace: CALLER_NAMESPACE, labels: { app: 'batch' } }),
    ]);
    // istiod may have connected the proxies before its informers saw every manifest.
    for (const proxy of [caller, unlabelled]) {
      await waitUntil(`${proxy.proxyId} has the model Service's listener and the ext_proc cluster`, async () => (await httpFilters(proxy, MODEL_LISTENER)) !== undefined && (await extprocCluster(proxy)) !== undefined, 30_000);
    }
  }, 180_000);

  afterAll(async () => {
    await istio?.stop();
    await kube?.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });

  it('puts ext_proc right before the router, with the authority, in the labelled caller\'s outbound listener, and gives it an HTTP/2 ext_proc cluster', async () => {
    const chains = (await httpFilters(caller, MODEL_LISTENER))!;
    expect(chains.length).toBeGreaterThan(0);
    for (const filters of chains) {
      expect(filters.map((f) => f.name).slice(-2)).toEqual(['envoy.filters.http.ext_proc', 'envoy.filters.http.router']);
      expect(filters.at(-2)?.typed_config?.grpc_service?.envoy_grpc).toEqual({ cluster_name: EXTPROC_CLUSTER, authority: EXTPROC_HOST });
    }
    const options = Object.values((await extprocCluster(caller))?.typed_extension_protocol_options ?? {})[0];
    expect(options?.explicit_http_config?.http2_protocol_options).toBeDefined();
    expect(options?.common_http_protocol_options?.max_requests_per_connection).toBe(500);
    // The workloadSelector is honoured: a caller without the label has no ext_proc filter.
    const others = (await httpFilters(unlabelled, MODEL_LISTENER))!;
    expect(others.length).toBeGreaterThan(0);
    for (const filters of others) {
      expect(filters.map((f) => f.name)).not.toContain('envoy.filters.http.ext_proc');
      expect(filters.at(-1)?.name).toBe('envoy.filters.http.router');
    }
  });

  it('a Sidecar that hides fledge-system leaves the filter without its cluster in istiod\'s config, exactly when `fledge validate` warns', async () => {
    // Alternating hidden / visible, so each case waits for a change istiod really pushed.
    const cases: { name: string; spec: Record<string, unknown>; hidden: boolean }[] = [
      { name: 'egress by host: its own namespace and istio-system', spec: { egress: [{ hosts: ['./*', 'istio-system/*'] }] }, hidden: true },
      { name: 'the fix: the ext_proc Service added', spec: { egress: [{ hosts: ['./*', 'istio-system/*', `fledge-system/${EXTPROC_HOST}`] }] }, hidden: false },
      { name: 'egress by port: every host, port 80 only', spec: { egress: [{ port: { number: 80, protocol: 'HTTP', name: 'http' }, hosts: ['*/*'] }] }, hidden: true },
      { name: 'the fix: an egress listener on port 50051 for fledge-system', spec: { egress: [{ port: { number: 80, protocol: 'HTTP', name: 'http' }, hosts: ['*/*'] }, { port: { number: 50051, protocol: 'GRPC', name: 'grpc' }, hosts: ['fledge-system/*'] }] }, hidden: false },
    ];
    const file = join(dir, 'sidecars.yaml');
    for (const c of cases) {
      const text = toYaml(sidecarResource(c.spec));
      writeFileSync(file, text);
      const run = spawnSync(process.execPath, [fledgeCli(), 'validate', '--json', join(MANIFESTS, 'envoyfilter.yaml'), file], { encoding: 'utf8', timeout: 30_000 });
      expect(run.status, `${c.name}: fledge validate: ${run.stderr}`).toBe(0);
      const result = JSON.parse(run.stdout) as { files: { file: string; valid: boolean; warnings?: { path: string; message: string }[] }[] };
      const warnings = result.files.find((f) => f.file === file)?.warnings ?? [];
      expect(warnings.length > 0, `${c.name}: fledge validate warns`).toBe(c.hidden);
      if (c.hidden) expect(warnings[0]?.message).toContain(`hides the ext_proc cluster ${EXTPROC_CLUSTER}`);

      await kube.apply(text);
      await waitUntil(`${c.name}: istiod ${c.hidden ? 'removes' : 'restores'} the ext_proc cluster in the caller's sidecar`, async () => ((await extprocCluster(caller)) === undefined) === c.hidden, 15_000);
      // The filter stays either way: with the cluster hidden, every ext_proc call would fail open.
      const chains = (await httpFilters(caller, MODEL_LISTENER))!;
      expect(chains.length, `${c.name}: the model Service's listener`).toBeGreaterThan(0);
      for (const filters of chains) expect(filters.map((f) => f.name).slice(-2), c.name).toEqual(['envoy.filters.http.ext_proc', 'envoy.filters.http.router']);
    }
  });
});
