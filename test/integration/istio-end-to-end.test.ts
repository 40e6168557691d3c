// fledge in a real Istio mesh: istiod (pilot-discovery) against the harness's kube-apiserver
// configures an ingress gateway Envoy (launched by pilot-agent) from the project's manifests
// — RBAC, extproc and controller config, the EnvoyFilter, the example Gateway, Service,
// DestinationRule and VirtualService — applied unchanged. WorkloadEntries on loopback stand
// in for the pods: `fledge sim` processes for the models, `fledge extproc` (as its
// ServiceAccount) behind the fledge-extproc Service. `fledge controller` (as its
// ServiceAccount) rolls out two candidates side by side, judged by analyses over extproc's
// series scraped by Prometheus: the example's healthy chat-v2 (namespace models) and, in a
// copy of the example with the seed's version names, a hallucinating v1.3 (models-b).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, mapLimit, type ModelResponse } from '../harness/http-client.js';
import { startIstio, type IstioHarness } from '../harness/istio.js';
import { exampleCopy, exampleManifests, manifest, replicaSetsFor, startControllerProcess, startExtprocProcess, startSimProcess, workloadEntry, type ExtprocChild, type RunningChild } from '../harness/istio-mesh.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { readVirtualService, waitForStatus, waitUntil } from '../harness/rollout-fixture.js';
import { routeWeights } from '../../controller/traffic/istio/route-weights.js';
import type { VirtualService } from '../../controller/traffic/istio/virtual-service.js';
import type { KnobsInput } from '../../sim/knobs.js';

// The seed's pauses are 10m and 15m: 60x makes them 10 s and 15 s, time for Prometheus to
// scrape the canary's new series and for this test to probe every weight step.
const TIME_SCALE = 60;
const SEED_FLAGS = resolve(import.meta.dirname, '../fixtures/seed/flags.json');
const HEALTHY: KnobsInput = { latency: { kind: 'fixed', ms: 5 }, qualityHeaders: true, qualityScore: 0.95, hallucinationRate: 0 };
/** A fixed population probed at every step: stickiness is a property of who, not of how many. */
const PROBE_USERS = Array.from({ length: 400 }, (_, i) => `probe-${i}`);

interface Mesh {
  namespace: string;
  host: string;
  stable: string;
  canary: string;
}
const A: Mesh = { namespace: 'models', host: 'chat.example.com', stable: 'v1', canary: 'v2' };
const B: Mesh = { namespace: 'models-b', host: 'chat-b.example.com', stable: 'v1.2', canary: 'v1.3' };

function weightsOf(vs: VirtualService, m: Mesh): [number | undefined, number | undefined] {
  const route = vs.spec.http?.find((h) => (h.route ?? []).length === 2)?.route ?? [];
  return [route.find((r) => r.destination.subset === m.stable)?.weight, route.find((r) => r.destination.subset === m.canary)?.weight];
}

describe('fledge through real istiod and an Istio ingress gateway', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-istio-e2e-'));
  let kube: KubeHarness;
  let istio: IstioHarness;
  let extproc: ExtprocChild;
  let prometheus: RunningPrometheus;
  let controller: RunningChild | undefined;
  const children: RunningChild[] = [];

  const send = (m: Mesh, opts: Omit<Parameters<typeof chat>[1], 'host'>): Promise<ModelResponse> => chat(istio.gateway.httpPort, { host: m.host, ...opts });
  const extprocService = async (m: Mesh) => (await extproc.debugState()).services.find((s) => s.stable === m.stable);

  beforeAll(async () => {
    kube = await startKube({ istioCrds: 'all' });
    istio = await startIstio(kube);
    for (const file of ['rbac.yaml', 'extproc.yaml', 'controller.yaml', 'envoyfilter.yaml']) await kube.apply(manifest(file));
    await kube.apply(exampleManifests());
    await kube.apply(exampleCopy(B.namespace, B.host, { v1: B.stable, v2: B.canary }));
    // What the Deployment controller would have made; the candidates' hashes label extproc's series.
    await replicaSetsFor(kube.adminKubeConfig, A.namespace);
    await replicaSetsFor(kube.adminKubeConfig, B.namespace);

    // The pods: one simulated model per version, each behind a WorkloadEntry with the pods' labels.
    const versions: [Mesh, string, KnobsInput][] = [
      [A, A.stable, HEALTHY],
      [A, A.canary, HEALTHY],
      [B, B.stable, HEALTHY],
      [B, B.canary, { ...HEALTHY, hallucinationRate: 0.3 }],
    ];
    for (const [m, version, knobs] of versions) {
      const sim = await startSimProcess(dir, version, knobs);
      children.push(sim);
      await kube.apply(workloadEntry(m.namespace, `chat-${version.replace('.', '-')}`, { app: 'chat', version }, { http: sim.port }));
    }

    const extprocKubeconfig = await kube.writeKubeconfig(await kube.kubeconfigFor('fledge-extproc', 'fledge-system'), 'extproc');
    // Every response sampled, so the quality gauge has the canary's series from its first requests.
    extproc = await startExtprocProcess(dir, extprocKubeconfig, SEED_FLAGS, { quality: { sampling: { defaultRate: 1 } } });
    children.push(extproc);
    await kube.apply(workloadEntry('fledge-system', 'fledge-extproc', { 'app.kubernetes.io/name': 'fledge-extproc' }, { grpc: extproc.port, 'http-admin': extproc.adminPort }));

    prometheus = await startPrometheus([`127.0.0.1:${extproc.adminPort}`], 1000);
    await prometheus.waitForScrapes(2);

    // Ready: the Gateway's listener is up and extproc decides requests through it.
    await istio.gateway.waitForListener(60_000);
    // Warm: 20 answers in a row decided by extproc (the first ext_proc calls of a cold Node
    // process can miss the production 200 ms message_timeout on a loaded machine).
    for (const m of [A, B]) {
      await waitUntil(`${m.host} answered through the gateway with extproc's decision 20 times in a row`, async () => {
        const answers = await mapLimit(Array.from({ length: 20 }, (_, i) => `warm-${i}`), 4, (user) => send(m, { user }));
        return answers.every((r) => r.status === 200 && r.headers['x-fledge-reason'] !== undefined);
      }, 60_000);
    }
  }, 300_000);

  afterAll(async () => {
    await controller?.stop();
    for (const c of children.reverse()) await c.stop().catch(() => undefined);
    await prometheus?.stop();
    await istio?.stop();
    await kube?.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });

  it('istiod puts ext_proc right before the router at the gateway, with the authority, and an HTTP/2 ext_proc cluster', async () => {
    const listeners = (await istio.gateway.configDump('dynamic_listeners')).configs as { active_state?: { listener?: { name?: string; filter_chains?: { filters?: { name: string; typed_config?: { http_filters?: { name: string; typed_config?: { grpc_service?: { envoy_grpc?: { cluster_name: string; authority?: string } } } }[] } }[] }[] } } }[];
    const gatewayListener = listeners.map((l) => l.active_state?.listener).find((l) => l?.name?.endsWith(`_${istio.gateway.httpPort}`));
    const hcm = gatewayListener?.filter_chains?.[0]?.filters?.find((f) => f.name === 'envoy.filters.network.http_connection_manager');
    const filters = hcm?.typed_config?.http_filters ?? [];
    expect(filters.map((f) => f.name).slice(-2)).toEqual(['envoy.filters.http.ext_proc', 'envoy.filters.http.router']);
    expect(filters.at(-2)?.typed_config?.grpc_service?.envoy_grpc).toEqual({
      cluster_name: 'outbound|50051||fledge-extproc.fledge-system.svc.cluster.local',
      authority: 'fledge-extproc.fledge-system.svc.cluster.local',
    });
    // The DestinationRule's HTTP/2 upgrade and stream rotation reached the ext_proc cluster.
    const clusters = (await istio.gateway.configDump('dynamic_active_clusters')).configs as { cluster?: { name?: string; typed_extension_protocol_options?: Record<string, { explicit_http_config?: { http2_protocol_options?: unknown }; common_http_protocol_options?: { max_requests_per_stream?: number; max_requests_per_connection?: number } }> } }[];
    const extprocCluster = clusters.map((c) => c.cluster).find((c) => c?.name === 'outbound|50051||fledge-extproc.fledge-system.svc.cluster.local');
    const options = Object.values(extprocCluster?.typed_extension_protocol_options ?? {})[0];
    expect(options?.explicit_http_config?.http2_protocol_options).toBeDefined();
    expect(options?.common_http_protocol_options?.max_requests_per_connection).toBe(500);
  });

  it('the controller\'s weight write reaches the gateway Envoy, confirmed through istiod (weightVerified)', async () => {
    controller = await startControllerProcess(dir, kube, ['--prometheus-url', prometheus.url, '--time-scale', String(TIME_SCALE), '--lease-name', 'fledge-controller-istio-e2e', '--istiod-debug-url', istio.istiodHttpUrl]);
    for (const m of [A, B]) {
      const status = await waitForStatus(kube.adminKubeConfig, m.namespace, 'chat-v2', 'the first weight step verified', (s) => s.weightVerified !== undefined, 60_000);
      expect(status.weightVerified).toMatchObject({ weight: 5, verified: true });
      expect(weightsOf(await readVirtualService(kube.adminKubeConfig, m.namespace, 'chat'), m)).toEqual([95, 5]);
      // What istiod confirmed is what the gateway's Envoy runs.
      const live = routeWeights(await istio.gateway.configDump('dynamic_route_configs'), { namespace: m.namespace, name: 'chat', stableSubset: m.stable, canarySubset: m.canary });
      expect(live.canaryWeights).toEqual([5]);
    }
  }, 120_000);

  it('follows the seed\'s flags through Istio\'s header routes; with extproc deciding, a spoofed x-fledge-version selects nothing', async () => {
    // The controller manages the VirtualService now (route token, token-matched per-version
    // routes) and the rollout stands at its first step, 5%.
    expect(await extprocService(B)).toMatchObject({ canary: B.canary, canaryWeight: 5 });
    // On this shared 2-core machine a few ext_proc calls can miss the production 200 ms
    // message_timeout; those fail open to the weighted route (no x-fledge-reason) and are
    // judged apart: here only what extproc decided is the flags' doing.
    const decided = (answers: ModelResponse[]) => {
      const out = answers.filter((r) => r.headers['x-fledge-reason'] !== undefined);
      expect(out.length, 'share of requests extproc decided').toBeGreaterThanOrEqual(answers.length * 0.9);
      return out;
    };
    const internal = await mapLimit(PROBE_USERS.slice(0, 40), 8, (user) => send(B, { user, segment: 'internal' }));
    expect(internal.every((r) => r.status === 200)).toBe(true);
    expect(new Set(decided(internal).map((r) => `${r.servedBy} ${r.headers['x-fledge-reason']}`))).toEqual(new Set([`${B.canary} flag`]));
    const beta = await mapLimit(PROBE_USERS, 16, (user) => send(B, { user, segment: 'beta' }));
    const betaDecided = decided(beta);
    const betaCanary = betaDecided.filter((r) => r.servedBy === B.canary).length / betaDecided.length;
    // Half by the flag's v1.3 branch, the other half (the default variant) by the 5% weight.
    expect(betaCanary).toBeGreaterThan(0.4);
    expect(betaCanary).toBeLessThan(0.65);
    // A client naming the canary changes nothing: each user gets what the sticky weight gives
    // them without the header.
    const users = PROBE_USERS.slice(0, 100);
    const plain = await mapLimit(users, 16, (user) => send(B, { user }));
    const spoofed = await mapLimit(users, 16, (user) => send(B, { user, headers: { 'x-fledge-version': B.canary } }));
    expect(spoofed.every((r) => r.status === 200)).toBe(true);
    const both = users.map((_, i) => [plain[i]!, spoofed[i]!] as const).filter(([p, q]) => p.headers['x-fledge-reason'] !== undefined && q.headers['x-fledge-reason'] !== undefined);
    expect(both.length).toBeGreaterThanOrEqual(90);
    for (const [p, q] of both) expect(q.servedBy).toBe(p.servedBy);
    expect(decided(spoofed).filter((r) => r.servedBy === B.canary).length).toBeLessThan(20);
  });

  it('with no endpoint behind the extproc Service the gateway fails open to the weighted route: no decisions', async () => {
    await kube.adminKubeConfig.makeApiClient(CustomObjectsApi).deleteNamespacedCustomObject({ group: 'networking.istio.io', version: 'v1', plural: 'workloadentries', namespace: 'fledge-system', name: 'fledge-extproc' });
    await waitUntil('requests pass the gateway without an extproc decision', async () => (await send(B, { user: 'probe-0' })).headers['x-fledge-reason'] === undefined, 30_000);
    // Internal users are the canary's by flag; without extproc they follow the weights (95/5) like everyone.
    const answers = await mapLimit(PROBE_USERS.slice(0, 100), 8, (user) => send(B, { user, segment: 'internal' }));
    expect(answers.filter((r) => r.headers['x-fledge-reason'] !== undefined)).toEqual([]);
    expect(answers.filter((r) => r.servedBy === B.stable).length).toBeGreaterThan(80);
  }, 60_000);
});
