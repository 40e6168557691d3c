// fledge in a real Istio mesh: istiod (pilot-discovery) against the harness's kube-apiserver
// configures an ingress gateway Envoy (launched by pilot-agent) from the project's manifests
// — RBAC, extproc and controller config, the EnvoyFilter, the example Gateway, Service,
// DestinationRule and VirtualService — applied unchanged. WorkloadEntries on loopback stand
// in for the pods: `fledge sim` processes for the models, `fledge extproc` (as its
// ServiceAccount) behind the fledge-extproc Service. `fledge controller` (as its
// ServiceAccount) rolls out two candidates side by side, judged by analyses over extproc's
// series scraped by Prometheus: the example's chat-v2 (namespace models), which answers the
// golden questions wrongly 30% of the time, and, in a copy of the example with the seed's
// version names, a healthy v1.3 (models-b, service chat-b). Quality comes from answer text
// only: `fledge probe`, run with manifests/prober.yaml's arguments, asks every version the
// shipped golden set through the gateway and extproc scores the answers. A third copy
// (models-c) shows a silent fail-open made loud: with the EnvoyFilter's authority gone (the
// bug of issue 13) the controller pauses its rollout, counting the traffic with the
// gateway's own Envoy counters; a fourth (models-d) the same with the fledge-extproc Service
// deleted. Two more (models-e, models-f) run the built-in shadow-canary policy: extproc copies
// 20% of the stable's requests back through the gateway, pinned to the candidate, and
// shadow-check judges the pairs before any user is served by it; the healthy candidate goes on
// to 5%, the one whose answers are twice as long is rolled back at weight 0.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrafficGenerator } from '../../local/traffic.js';
import { DEFAULT_GOLDEN_FILE } from '../../local/golden-files.js';
import { simGoldenAnswers } from '../harness/golden-answers.js';
import { chat, mapLimit, type ModelResponse } from '../harness/http-client.js';
import { startIstio, type IstioHarness } from '../harness/istio.js';
import { exampleCopy, exampleManifests, manifest, replicaSetsFor, startControllerProcess, startExtprocProcess, startProberProcess, startSimProcess, workloadEntry, type ExtprocChild, type RunningChild } from '../harness/istio-mesh.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { readStatus, readVirtualService, VS_API, waitForStatus, waitUntil } from '../harness/rollout-fixture.js';
import { routeWeights } from '../../controller/traffic/istio/route-weights.js';
import { isCanaryBucket, stickyBucket } from '../../extproc/sticky.js';
import type { VirtualService } from '../../controller/traffic/istio/virtual-service.js';
import type { RolloutStatus } from '../../controller/kube/rollout-status.js';
import type { KnobsInput } from '../../sim/knobs.js';

// The default policy's pauses are 10m, 15m and 15m: 15x makes them 40 s, 60 s and 60 s, room
// for the tests that probe the 5% stage while four meshes take traffic. The first analysis
// wants 50 canary requests at weight 5: 5% of USER_RPS over 40 s is 100.
const TIME_SCALE = 15;
const USER_RPS = 50;
const SEED_FLAGS = resolve(import.meta.dirname, '../fixtures/seed/flags.json');
/** The sims' answers to the shipped golden set (the one extproc's ConfigMap and the prober use). */
const GOLDEN = simGoldenAnswers(DEFAULT_GOLDEN_FILE);
// Half a second per answer, a small model's pace: the policy's latency check (canary p95 <= 2x
// the stable's) then judges the model, not the scheduling delays of this shared machine
// (hundreds of ms at its load; with 5 ms answers a healthy canary's p95 breached it).
const HEALTHY: KnobsInput = { latency: { kind: 'fixed', ms: 500 }, hallucinationRate: 0, golden: GOLDEN };
const HALLUCINATING: KnobsInput = { ...HEALTHY, hallucinationRate: 0.3 };
const VERDICTS = ['Promoted', 'RolledBack', 'Paused', 'Invalid', 'AwaitingReview'];
/**
 * The silent fail-open check's traffic: the gateway Envoy's own upstream requests to any
 * Service of the rollout's namespace (Istio names the cluster outbound|port|subset|host and
 * tags it cluster_name). The harness's Envoy has no Istio stats filter, so there is no
 * istio_requests_total (the controller's default).
 */
const ENVOY_TRAFFIC_QUERY = 'sum(increase(envoy_cluster_upstream_rq_total{cluster_name=~`outbound\\|[0-9]+\\|[^|]*\\|[^.]+\\.{{namespace}}\\.svc\\.cluster\\.local`}[1m]))';
/** A fixed population probed at every step: stickiness is a property of who, not of how many. */
const PROBE_USERS = Array.from({ length: 400 }, (_, i) => `probe-${i}`);

interface Mesh {
  /** The service name extproc reports (fledge.dev/service on the copies). */
  service: string;
  namespace: string;
  host: string;
  stable: string;
  canary: string;
}
/** Its candidate answers golden questions wrongly 30% of the time: rolled back. */
const A: Mesh = { service: 'chat', namespace: 'models', host: 'chat.example.com', stable: 'v1', canary: 'v2' };
/** The seed's versions, healthy: promoted. */
const B: Mesh = { service: 'chat-b', namespace: 'models-b', host: 'chat-b.example.com', stable: 'v1.2', canary: 'v1.3' };
/** Rolled out while the ext_proc path is broken. */
// Its own subset names: a pod template identical to models' would share its pod-template-hash, and so its series.
const C: Mesh = { service: 'chat-c', namespace: 'models-c', host: 'chat-c.example.com', stable: 'v3', canary: 'v4' };
/** Rolled out while the fledge-extproc Service is deleted. */
const D: Mesh = { service: 'chat-d', namespace: 'models-d', host: 'chat-d.example.com', stable: 'v5', canary: 'v6' };
/** Under shadow-canary, a candidate answering like its stable: passes the shadow stage. */
const E: Mesh = { service: 'chat-e', namespace: 'models-e', host: 'chat-e.example.com', stable: 'v7', canary: 'v8' };
/** Under shadow-canary, a candidate whose answers are twice as long: rolled back at weight 0. */
const F: Mesh = { service: 'chat-f', namespace: 'models-f', host: 'chat-f.example.com', stable: 'v9', canary: 'v10' };
// The shadow stage (10m at 15x: 40 s) copies 20% of the stable's requests: at 12 requests a
// second ~95 pairs by its end (shadow-check's 10m window is real time: all of them), past its
// minimum of 50 with room for requests whose ext_proc call misses its timeout on a loaded
// machine (they fail open to the stable undecided, and are not copied).
const SHADOW_RPS = 12;
const SHORT: KnobsInput = { ...HEALTHY, tokens: { completion: 32 } };
const LONG: KnobsInput = { ...HEALTHY, tokens: { completion: 64 } };
const SHADOW_METRICS = ['shadow-capture-failures', 'shadow-failures', 'shadow-golden-lost', 'shadow-length-ratio', 'quality-score', 'shadow-guardrail'];

/** The example copied for a mesh whose candidate is rolled out under the built-in shadow-canary policy. */
function shadowMeshManifests(m: Mesh): string {
  const text = exampleCopy(m.namespace, m.host, { v1: m.stable, v2: m.canary }, m.service);
  const shadowed = text.replace(/^(\s*fledge\.dev\/policy:) default$/m, '$1 shadow-canary');
  if (shadowed === text) throw new Error('manifests/example: the candidate Deployment has no fledge.dev/policy: default to replace');
  return shadowed;
}

/** The sum of a counter's series in Prometheus text whose labels include all of `labels`. */
function counterSum(metricsText: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return metricsText
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && wanted.every((l) => line.includes(l)))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** What a shadow rollout looked like while it stood in its shadow stage, and how it left it. */
interface ShadowWatch {
  /** fledge.dev/shadow-percent on every VirtualService read while the candidate's weight was 0. */
  percents: (string | undefined)[];
  /** Whether any read saw a shadow share together with a canary weight above 0. */
  shadowWhileServing: boolean;
  /** The last moment the VirtualService still gave the candidate weight 0, and extproc's counters for the candidate read just before it. */
  lastShadowAt: number;
  userRequests: number;
  copies: number;
  /** extproc's shadow capture counts for the service then, by outcome, for failure messages. */
  captures: string;
  /** The first status past the shadow stage: a weight above 0 or a verdict. */
  after: RolloutStatus;
  /** The VirtualService read right after that status: the controller writes it before the status. */
  afterVs: VirtualService;
}

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
  const traffic = new Map<Mesh, TrafficGenerator>();
  const simPorts = new Map<string, number>();
  const userTraffic = (m: Mesh, rps = USER_RPS) => {
    const t = new TrafficGenerator({
      port: istio.gateway.httpPort,
      host: m.host,
      rps,
      users: Array.from({ length: 2000 }, (_, i) => ({ id: `${m.namespace}-user-${i}` })),
      request: (i) => ({ kind: 'chat', body: { model: 'chat', messages: [{ role: 'user', content: `question ${i}` }] } }),
    });
    t.start();
    traffic.set(m, t);
    return t;
  };

  const send = (m: Mesh, opts: Omit<Parameters<typeof chat>[1], 'host'>): Promise<ModelResponse> => chat(istio.gateway.httpPort, { host: m.host, ...opts });
  /**
   * On this shared 2-core machine (load ~10) some ext_proc calls miss the production 200 ms
   * message_timeout: extproc's own work per message stays at p99 ~35 ms, but its event loop
   * waits ~400 ms (p99) for a CPU. Those requests fail open to the weighted route (no
   * x-fledge-reason). What extproc decides is judged here, so a request that failed open is
   * asked again, as a client's retry would; the count is reported.
   */
  let failedOpen = 0;
  let asked = 0;
  const decidedAnswer = async (m: Mesh, opts: Omit<Parameters<typeof chat>[1], 'host'>): Promise<ModelResponse> => {
    let answer = await send(m, opts);
    asked++;
    for (let attempt = 1; attempt < 10 && answer.headers['x-fledge-reason'] === undefined; attempt++) {
      failedOpen++;
      await new Promise((r) => setTimeout(r, 100 * attempt));
      answer = await send(m, opts);
      asked++;
    }
    return answer;
  };
  const decidedAll = async (m: Mesh, users: readonly string[], opts: Omit<Parameters<typeof chat>[1], 'host' | 'user'> = {}) => {
    const answers = await mapLimit([...users], 32, (user) => decidedAnswer(m, { ...opts, user }));
    const undecided = answers.filter((r) => r.headers['x-fledge-reason'] === undefined);
    expect(undecided.map((r) => r.status), `answers extproc never decided in 10 tries; ${undecided.length ? await extprocDiagnostics() : ''}`).toEqual([]);
    return answers;
  };
  /** Why requests went undecided: the gateway's ext_proc counters and extproc's own timings. */
  const extprocDiagnostics = async () => {
    const stats = await (await fetch(`${istio.gateway.adminUrl}/stats`)).text();
    const lines = stats.split('\n').filter((l) => /ext_proc|fledge-extproc.*(rq_timeout|rq_total|cx_total|rq_reset|destroy|rq_error|cx_connect_fail)/.test(l) && !/: 0$/.test(l));
    const q = async (promql: string) => JSON.stringify(await prometheus.query(promql));
    return [
      `gateway: ${lines.join('; ')}`,
      `extproc event-loop lag p99 max 1m: ${await q('max_over_time(fledge_extproc_nodejs_eventloop_lag_p99_seconds[1m])')}`,
      `extproc phase p99 1m: ${await q('histogram_quantile(0.99, sum by (le) (rate(fledge_extproc_phase_duration_seconds_bucket[1m])))')}`,
      `extproc cpu 1m: ${await q('rate(fledge_extproc_process_cpu_seconds_total[1m])')}`,
    ].join(' | ');
  };
  /**
   * A new service's rollout, started while the ext_proc path is broken: its traffic is
   * answered undecided, and the controller pauses it at the first step with reason
   * no-decisions, counting the requests with the gateway Envoy's own counters.
   */
  const expectRolloutPausedForNoDecisions = async (m: Mesh) => {
    await kube.apply(exampleCopy(m.namespace, m.host, { v1: m.stable, v2: m.canary }, m.service));
    for (const version of [m.stable, m.canary]) await kube.apply(workloadEntry(m.namespace, `chat-${version}`, { app: 'chat', version }, { http: simPorts.get(version === m.stable ? A.stable : B.stable)! }));
    await replicaSetsFor(kube.adminKubeConfig, m.namespace);
    await waitUntil(`${m.host} answers through the gateway`, async () => (await send(m, { user: 'readiness' })).status === 200, 30_000);
    const t = userTraffic(m, 20);

    const s = await waitForStatus(kube.adminKubeConfig, m.namespace, 'chat-v2', 'a pause', (st) => st.phase !== 'Progressing', 60_000);
    expect(s.phase, s.message).toBe('Paused');
    expect(s.pause?.reason).toBe('no-decisions');
    expect(s.message).toMatch(new RegExp(`EnvoyFilter not applied or ext_proc cluster unreachable: \\d+ requests reached ${m.service} but extproc decided none`));
    expect(weightsOf(await readVirtualService(kube.adminKubeConfig, m.namespace, 'chat'), m)).toEqual([95, 5]);
    // What the gateway hides: every request answered, and none decided.
    expect(t.answers.length).toBeGreaterThan(20);
    expect(t.failures()).toEqual([]);
    expect(t.answers.some((a) => a.reason !== undefined)).toBe(false);
    const [counted] = await prometheus.query(ENVOY_TRAFFIC_QUERY.replaceAll('{{namespace}}', m.namespace));
    expect(counted).toBeGreaterThanOrEqual(20);
    await t.stop();
  };
  const extprocService = async (m: Mesh) => (await extproc.debugState()).services.find((s) => s.service === m.service);
  /**
   * Follows a shadow-canary rollout until it leaves its shadow stage (a weight above 0 or a
   * verdict): on each look extproc's counters for the candidate as Prometheus scraped them,
   * then the VirtualService (extproc's routing lags the VirtualService, so counters read
   * before a look that still shows weight 0 hold no user request routed to the candidate),
   * then the status. From Prometheus, not extproc's /metrics: rendering that page twice a
   * second would take extproc's event loop from the requests it decides. Its traffic stops
   * then: what follows the shadow stage is the other meshes' business.
   */
  const watchShadowStage = async (m: Mesh): Promise<ShadowWatch> => {
    const watch: Omit<ShadowWatch, 'after' | 'afterVs'> = { percents: [], shadowWhileServing: false, lastShadowAt: 0, userRequests: 0, copies: 0, captures: '' };
    const deadline = Date.now() + 180_000;
    for (;;) {
      const readAt = Date.now();
      const where = `service="${m.service}",version="${m.canary}"`;
      const [userRequests = 0] = await prometheus.query(`sum(inference_requests_total{${where}})`);
      const [copies = 0] = await prometheus.query(`sum(fledge_shadow_copy_requests_total{${where}})`);
      const captures = await prometheus.query(`sum by (outcome) (inference_shadow_captures_total{service="${m.service}"})`);
      const vs = await readVirtualService(kube.adminKubeConfig, m.namespace, 'chat');
      const percent = vs.metadata?.annotations?.['fledge.dev/shadow-percent'];
      if (!weightsOf(vs, m)[1]) {
        watch.percents.push(percent);
        watch.lastShadowAt = readAt;
        Object.assign(watch, { userRequests, copies, captures: captures.join(', ') });
      } else if (percent !== undefined) watch.shadowWhileServing = true;
      const { status } = await readStatus(kube.adminKubeConfig, m.namespace, 'chat-v2');
      if (status && (status.weight > 0 || VERDICTS.includes(status.phase))) {
        await traffic.get(m)?.stop();
        // Read now, not when the test looks: without its users the rollout goes on (to Paused,
        // for lack of samples, or wherever its background analysis takes it) while others run.
        return { ...watch, after: status, afterVs: await readVirtualService(kube.adminKubeConfig, m.namespace, 'chat') };
      }
      if (Date.now() > deadline) throw new Error(`${m.namespace}: still in the shadow stage after 180 s; last status: ${JSON.stringify({ phase: status?.phase, step: status?.step, message: status?.message })}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const shadowWatches = new Map<Mesh, Promise<ShadowWatch>>();

  beforeAll(async () => {
    kube = await startKube({ istioCrds: 'all' });
    // Envoy's upstream request counters, which Istio's bootstrap leaves out unless asked (what a
    // mesh's defaultConfig.proxyStatsMatcher does): the silent fail-open check counts them.
    istio = await startIstio(kube, { proxyStatsMatcher: { inclusionSuffixes: ['upstream_rq_total'], inclusionRegexps: ['.*ext_proc.*', '.*fledge-extproc.*'] } });
    for (const file of ['rbac.yaml', 'extproc.yaml', 'controller.yaml', 'envoyfilter.yaml']) await kube.apply(manifest(file));
    await kube.apply(exampleManifests());
    await kube.apply(exampleCopy(B.namespace, B.host, { v1: B.stable, v2: B.canary }, B.service));
    for (const m of [E, F]) await kube.apply(shadowMeshManifests(m));
    // The Deployments' Pods reported Ready (kube-controller-manager made their ReplicaSets); the candidates' hashes label extproc's series.
    await replicaSetsFor(kube.adminKubeConfig, A.namespace);
    await replicaSetsFor(kube.adminKubeConfig, B.namespace);
    for (const m of [E, F]) await replicaSetsFor(kube.adminKubeConfig, m.namespace);

    // The pods: one simulated model per version, each behind a WorkloadEntry with the pods' labels.
    const versions: [Mesh, string, KnobsInput][] = [
      [A, A.stable, HEALTHY],
      [A, A.canary, HALLUCINATING],
      [B, B.stable, HEALTHY],
      [B, B.canary, HEALTHY],
      [E, E.stable, SHORT],
      [E, E.canary, SHORT],
      [F, F.stable, SHORT],
      [F, F.canary, LONG],
    ];
    for (const [m, version, knobs] of versions) {
      const sim = await startSimProcess(dir, version, knobs);
      children.push(sim);
      simPorts.set(version, sim.port);
      await kube.apply(workloadEntry(m.namespace, `chat-${version.replace('.', '-')}`, { app: 'chat', version }, { http: sim.port }));
    }

    const extprocKubeconfig = await kube.writeKubeconfig(await kube.kubeconfigFor('fledge-extproc', 'fledge-system'), 'extproc');
    // manifests/extproc.yaml's config as it is: the shipped golden set, the probe Secret, shadow
    // copies through the gateway (its loopback port here, as for the prober).
    const gatewayUrl = `http://127.0.0.1:${istio.gateway.httpPort}`;
    extproc = await startExtprocProcess(dir, extprocKubeconfig, SEED_FLAGS, {}, gatewayUrl);
    children.push(extproc);
    await kube.apply(workloadEntry('fledge-system', 'fledge-extproc', { 'app.kubernetes.io/name': 'fledge-extproc' }, { grpc: extproc.port, 'http-admin': extproc.adminPort }));

    prometheus = await startPrometheus([`127.0.0.1:${extproc.adminPort}`], 1000, [new URL(istio.gateway.adminUrl).host]);
    await prometheus.waitForScrapes(2);

    // Ready: the Gateway's listener is up and extproc decides requests through it.
    await istio.gateway.waitForListener(60_000);
    // Warm: 20 answers in a row decided by extproc (the first ext_proc calls of a cold Node
    // process can miss the production 200 ms message_timeout on a loaded machine).
    for (const m of [A, B, E, F]) {
      await waitUntil(`${m.host} answered through the gateway with extproc's decision 20 times in a row`, async () => {
        const answers = await mapLimit(Array.from({ length: 20 }, (_, i) => `warm-${i}`), 4, (user) => send(m, { user }));
        return answers.every((r) => r.status === 200 && r.headers['x-fledge-reason'] !== undefined);
      }, 60_000);
    }
    // The golden prober as manifests/prober.yaml runs it, as its ServiceAccount, through the gateway.
    if (!extproc.probeSecretFile) throw new Error('manifests/extproc.yaml configures no probe Secret');
    children.push(await startProberProcess(dir, extprocKubeconfig, { gatewayUrl, secretFile: extproc.probeSecretFile, timeScale: TIME_SCALE }));
    // extproc scores the probes' answers for every version: the prober's Host reaches each service through the Gateway.
    await waitUntil('golden probes of every version scored by extproc', async () => {
      const scored = await prometheus.query('sum by (version) (fledge_quality_evaluated_total{evaluator="golden-probe"})');
      return scored.length === 8;
    }, 60_000);
    for (const m of [A, B]) userTraffic(m);
  }, 300_000);

  afterAll(async () => {
    console.log(`istio e2e: ${failedOpen} of ${asked} test requests failed open (ext_proc past message_timeout) and were asked again`);
    // Where every rollout ended, for a failure's reader (the shadow meshes' go on without users after their stage).
    for (const m of [A, B, C, D, E, F]) {
      const status = kube ? (await readStatus(kube.adminKubeConfig, m.namespace, 'chat-v2').catch(() => undefined))?.status : undefined;
      console.log(`istio e2e: ${m.namespace}/chat-v2 ended ${status?.phase ?? 'unknown'} at step ${status?.step ?? '?'}, weight ${status?.weight ?? '?'}: ${status?.message ?? ''}`);
    }
    for (const t of traffic.values()) await t.stop();
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
    const clusters = (await istio.gateway.configDump('dynamic_active_clusters')).configs as { cluster?: { name?: string; typed_extension_protocol_options?: Record<string, { explicit_http_config?: { http2_protocol_options?: unknown }; common_http_protocol_options?: { max_requests_per_stream?: number; max_requests_per_connection?: number; idle_timeout?: string } }> } }[];
    const extprocCluster = clusters.map((c) => c.cluster).find((c) => c?.name === 'outbound|50051||fledge-extproc.fledge-system.svc.cluster.local');
    const options = Object.values(extprocCluster?.typed_extension_protocol_options ?? {})[0];
    expect(options?.explicit_http_config?.http2_protocol_options).toBeDefined();
    expect(options?.common_http_protocol_options?.max_requests_per_connection).toBe(500);
    // The example DestinationRule's idle timeout reached the model clusters (Envoy drops an idle connection before the sim closes it).
    const modelClusters = clusters.map((c) => c.cluster).filter((c) => c?.name?.endsWith('|chat.models.svc.cluster.local') && c.name.startsWith('outbound|'));
    expect(modelClusters.map((c) => c?.name).sort()).toEqual(['outbound|80|v1|chat.models.svc.cluster.local', 'outbound|80|v2|chat.models.svc.cluster.local', 'outbound|80||chat.models.svc.cluster.local']);
    for (const c of modelClusters) expect(Object.values(c?.typed_extension_protocol_options ?? {})[0]?.common_http_protocol_options, c?.name).toMatchObject({ idle_timeout: '2s' });
  });

  it('the controller\'s weight write reaches the gateway Envoy, confirmed through istiod (weightVerified)', async () => {
    controller = await startControllerProcess(dir, kube, ['--prometheus-url', prometheus.url, '--time-scale', String(TIME_SCALE), '--lease-name', 'fledge-controller-istio-e2e', '--istiod-debug-url', istio.istiodHttpUrl, '--traffic-query', ENVOY_TRAFFIC_QUERY]);
    // The shadow meshes' rollouts run alongside (their users from now on only: the shadow stage
    // is all they need); their test below reads what these saw.
    for (const m of [E, F]) {
      userTraffic(m, SHADOW_RPS);
      const watch = watchShadowStage(m);
      watch.catch(() => undefined);
      shadowWatches.set(m, watch);
    }
    const status = await waitForStatus(kube.adminKubeConfig, B.namespace, 'chat-v2', 'the first weight step verified', (s) => s.weightVerified !== undefined, 60_000);
    expect(status.weightVerified).toMatchObject({ weight: 5, verified: true });
    expect(weightsOf(await readVirtualService(kube.adminKubeConfig, B.namespace, 'chat'), B)).toEqual([95, 5]);
    // What istiod confirmed is what the gateway's Envoy runs.
    const live = routeWeights(await istio.gateway.configDump('dynamic_route_configs'), { namespace: B.namespace, name: 'chat', stableSubset: B.stable, canarySubset: B.canary });
    expect(live.canaryWeights).toEqual([5]);
  }, 120_000);

  it('follows the seed\'s flags through Istio\'s header routes; with extproc deciding, a spoofed x-fledge-version selects nothing', async () => {
    // The controller manages the VirtualService now (route token, token-matched per-version
    // routes) and the rollout stands at its first step, 5%.
    expect(await extprocService(B)).toMatchObject({ canary: B.canary, canaryWeight: 5, routesReportServedBy: true });
    const internal = await decidedAll(B, PROBE_USERS.slice(0, 40), { segment: 'internal' });
    expect(new Set(internal.map((r) => `${r.status} ${r.servedBy} ${r.headers['x-fledge-reason']}`))).toEqual(new Set([`200 ${B.canary} flag`]));
    const beta = await decidedAll(B, PROBE_USERS, { segment: 'beta' });
    const betaCanary = beta.filter((r) => r.servedBy === B.canary).length / beta.length;
    // Half by the flag's v1.3 branch, the other half (the default variant) by the 5% weight.
    expect(betaCanary).toBeGreaterThan(0.4);
    expect(betaCanary).toBeLessThan(0.65);
    // A client naming the canary changes nothing: each user gets what the sticky weight gives them without the header.
    const users = PROBE_USERS.slice(0, 100);
    const plain = await decidedAll(B, users);
    const spoofed = await decidedAll(B, users, { headers: { 'x-fledge-version': B.canary } });
    expect(spoofed.map((r) => `${r.status} ${r.servedBy}`)).toEqual(plain.map((r) => `200 ${r.servedBy}`));
    expect(spoofed.filter((r) => r.servedBy === B.canary).length).toBeLessThan(20);
  });

  it('promotes the healthy candidate step by step: sticky shares per weight, weights confirmed in the proxy, kill switch, no failed request', async () => {
    // Probe each weight step while extproc runs it: every user of a fixed population is where
    // its sticky bucket puts it at that weight, so whoever was on the canary stays there.
    const onCanary = new Map<number, Set<string>>();
    for (const weight of [5, 25, 50]) {
      // The stage before ends on its evidence, or runs up to 3x its pause (180 s at 15x) when the probes' answers are too few.
      await waitUntil(`extproc runs canary weight ${weight} for ${B.namespace}`, async () => (await extprocService(B))?.canaryWeight === weight, 240_000);
      const answers = await decidedAll(B, PROBE_USERS);
      expect((await extprocService(B))?.canaryWeight, 'the weight changed while probing; the step is too short to probe').toBe(weight);
      expect(answers.every((a) => a.status === 200)).toBe(true);
      const expected = PROBE_USERS.map((u) => (isCanaryBucket(stickyBucket(B.service, u), weight) ? B.canary : B.stable));
      expect(answers.map((a) => a.servedBy), `who is served what at weight ${weight}`).toEqual(expected);
      const canaryUsers = new Set(PROBE_USERS.filter((_, i) => answers[i]!.servedBy === B.canary));
      expect(Math.abs((100 * canaryUsers.size) / PROBE_USERS.length - weight), `share at weight ${weight}`).toBeLessThanOrEqual(4);
      onCanary.set(weight, canaryUsers);
    }
    for (const [from, to] of [[5, 25], [25, 50]] as const) {
      const left = [...onCanary.get(from)!].filter((u) => !onCanary.get(to)!.has(u));
      expect(left, `users on the canary at ${from} who left it at ${to}`).toEqual([]);
    }

    const done = await waitForStatus(kube.adminKubeConfig, B.namespace, 'chat-v2', 'a verdict', (s) => VERDICTS.includes(s.phase), 300_000);
    expect(done.phase, done.message).toBe('Promoted');
    expect(done.lastAnalysis?.metrics.map((mt) => [mt.name, mt.phase])).toEqual(['error-rate', 'p95-latency', 'quality-score', 'hallucination-rate', 'cost-per-request'].map((n) => [n, 'Successful']));
    // Quality from the probes' answer text: every golden answer of the healthy candidate right.
    expect(done.lastAnalysis?.metrics.find((mt) => mt.name === 'quality-score')?.measurements.at(-1)?.value).toEqual([1]);
    expect(weightsOf(await readVirtualService(kube.adminKubeConfig, B.namespace, 'chat'), B)).toEqual([0, 100]);
    expect(done.weightVerified).toMatchObject({ weight: 100, verified: true });

    await waitUntil('extproc routes everyone to the promoted version', async () => {
      const state = await extprocService(B);
      return state?.canaryWeight === 100 || (state?.stable === B.canary && state.canary === undefined);
    }, 30_000);
    const full = await decidedAll(B, PROBE_USERS.slice(0, 100));
    expect(new Set(full.map((r) => `${r.status} ${r.servedBy}`))).toEqual(new Set([`200 ${B.canary}`]));

    // Kill switch on the VirtualService: everyone on stable at once, whatever the weight.
    const custom = kube.adminKubeConfig.makeApiClient(CustomObjectsApi);
    const vs = await readVirtualService(kube.adminKubeConfig, B.namespace, 'chat');
    const stableNow = vs.metadata?.annotations?.['fledge.dev/stable-subset'];
    const setKilled = (killed: string) => custom.patchNamespacedCustomObject({ ...VS_API, namespace: B.namespace, name: 'chat', body: { metadata: { annotations: { 'fledge.dev/killed': killed } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await setKilled('true');
    await waitUntil('extproc sees the kill switch', async () => (await extprocService(B))?.killed === true, 15_000);
    const killed = await decidedAll(B, PROBE_USERS.slice(0, 100));
    expect(new Set(killed.map((r) => `${r.status} ${r.servedBy} ${r.headers['x-fledge-reason']}`))).toEqual(new Set([`200 ${stableNow} killed`]));
    await setKilled('false');

    const t = traffic.get(B)!;
    expect(t.answers.length).toBeGreaterThan(1000);
    expect(t.failures()).toEqual([]);
  }, 900_000);

  it('rolls back the candidate that answers golden questions wrongly; no request fails and traffic returns to stable', async () => {
    const done = await waitForStatus(kube.adminKubeConfig, A.namespace, 'chat-v2', 'a verdict', (s) => VERDICTS.includes(s.phase), 60_000);
    expect(done.phase, done.message).toBe('RolledBack');
    // 30% wrong answers is past the default policy's hard limit (hallucinations > 20% of the last 50 verdicts):
    // extproc's guardrail takes the canary off first and the controller rolls back on its trip (fledge_guardrail_tripped
    // in Prometheus); with a milder fault the stage's comparison with the stable (hallucination-rate: worse) or the
    // background analysis's hallucination-rate or quality-score decides.
    expect(done.message).toMatch(/metric (guardrail|hallucination-rate|quality-score)( failed|: )/);
    expect(weightsOf(await readVirtualService(kube.adminKubeConfig, A.namespace, 'chat'), A)).toEqual([100, 0]);
    expect(done.weightVerified).toMatchObject({ weight: 0, verified: true });
    // The probes' verdicts: ~30% of the candidate's golden answers wrong, none of the stable's.
    const rate = async (version: string) => {
      const [wrong] = await prometheus.query(`sum(fledge_quality_hallucination_verdicts_total{evaluator="golden-probe",version="${version}"})`);
      const [all] = await prometheus.query(`sum(fledge_quality_evaluated_total{evaluator="golden-probe",version="${version}"})`);
      return (wrong ?? 0) / all!;
    };
    // Well above the policy's 0.05 and the stable's 0 (a rate of 0.3 over ~100 probes).
    const canaryRate = await rate(A.canary);
    expect(canaryRate).toBeGreaterThan(0.1);
    expect(canaryRate).toBeLessThan(0.5);
    expect(await rate(A.stable)).toBe(0);
    await waitUntil('extproc runs weight 0', async () => (await extprocService(A))?.canaryWeight === 0 || (await extprocService(A))?.canary === undefined, 30_000);
    const after = await decidedAll(A, PROBE_USERS.slice(0, 100));
    expect(new Set(after.map((r) => `${r.status} ${r.servedBy}`))).toEqual(new Set([`200 ${A.stable}`]));
    expect(traffic.get(A)!.failures()).toEqual([]);
  }, 120_000);

  it('shadow-canary through the gateway: the healthy candidate passes the shadow stage to 5%, the long-winded one is rolled back at weight 0; no user served by either meanwhile', async () => {
    const healthy = await shadowWatches.get(E)!;
    const long = await shadowWatches.get(F)!;

    // The controller shares the shadow stage with extproc on the VirtualService, never while the candidate serves.
    for (const w of [healthy, long]) {
      expect(w.percents).toContain('20');
      expect(w.shadowWhileServing).toBe(false);
    }
    // The copies went back through the gateway, where extproc pinned them to the candidate
    // (it counts them as copies there), and none counted as a user request.
    for (const [m, w] of [[E, healthy], [F, long]] as const) {
      expect(w.copies, `${m.service}'s copies routed to ${m.canary} (status ${w.after.phase}: ${w.after.message}; captures: ${w.captures})`).toBeGreaterThanOrEqual(50);
      expect(w.userRequests, `${m.service}'s user requests routed to ${m.canary} during shadow`).toBe(0);
    }

    // The healthy candidate: shadow-check passed on its pairs, then the first canary weight, the shadow share gone.
    expect(healthy.after.phase, healthy.after.message).toBe('Progressing');
    expect(healthy.after.weight).toBe(5);
    const check = healthy.after.lastAnalysis;
    expect(check?.metrics.map((mt) => [mt.name, mt.phase])).toEqual(SHADOW_METRICS.map((n) => [n, 'Successful']));
    const ratio = check?.metrics.find((mt) => mt.name === 'shadow-length-ratio')?.measurements.at(-1);
    expect(ratio?.n).toBeGreaterThanOrEqual(50);
    expect(ratio?.value?.[0]).toBeGreaterThan(0.8);
    expect(ratio?.value?.[0]).toBeLessThan(1.25);
    expect(healthy.afterVs.metadata?.annotations?.['fledge.dev/shadow-percent']).toBeUndefined();
    expect(weightsOf(healthy.afterVs, E)).toEqual([95, 5]);

    // The candidate whose answers are twice as long: rolled back at weight 0 on the length ratio.
    expect(long.after.phase, long.after.message).toBe('RolledBack');
    expect(long.after.message).toMatch(/shadow-length-ratio failed: value (1\.[6-9]|2)/);
    expect(long.after.weight).toBe(0);
    const longVs = await readVirtualService(kube.adminKubeConfig, F.namespace, 'chat');
    expect(weightsOf(longVs, F)).toEqual([100, 0]);
    expect(longVs.metadata?.annotations?.['fledge.dev/shadow-percent']).toBeUndefined();
    const longMetrics = await (await fetch(`http://127.0.0.1:${extproc.adminPort}/metrics`)).text();
    expect(counterSum(longMetrics, 'inference_requests_total', { service: F.service, version: F.canary })).toBe(0);

    // The users: every answer from the stable while the candidate was shadowed, none failed.
    for (const [m, w] of [[E, healthy], [F, long]] as const) {
      const t = traffic.get(m)!;
      const during = t.answers.filter((a) => a.at <= w.lastShadowAt);
      expect(during.length, `${m.service}'s answers during shadow`).toBeGreaterThan(200);
      expect(during.filter((a) => a.servedBy !== m.stable).map((a) => a.servedBy)).toEqual([]);
      expect(t.failures()).toEqual([]);
    }
    expect(traffic.get(F)!.answers.filter((a) => a.servedBy !== F.stable)).toEqual([]);
  }, 60_000);

  it('a silent fail-open is loud: with the EnvoyFilter\'s authority gone, traffic flows undecided and the controller pauses the rollout (no-decisions)', async () => {
    for (const t of traffic.values()) await t.stop();
    // The bug of issue 13: without envoy_grpc.authority Envoy sends the cluster name as :authority and extproc's HTTP/2 server resets the stream.
    const filter = manifest('envoyfilter.yaml');
    const broken = filter.replace(/^\s*authority: fledge-extproc\.fledge-system\.svc\.cluster\.local\n/gm, '');
    expect(broken).not.toBe(filter);
    await kube.apply(broken);
    await waitUntil('requests pass the gateway without an extproc decision', async () => (await send(B, { user: 'probe-0' })).headers['x-fledge-reason'] === undefined, 30_000);
    await expectRolloutPausedForNoDecisions(C);
    await kube.apply(filter);
    await waitUntil('extproc decides again through the gateway', async () => (await send(B, { user: 'probe-0' })).headers['x-fledge-reason'] !== undefined, 30_000);
  }, 180_000);

  it('with the fledge-extproc Service deleted, a rollout started then pauses too (no-decisions); restored, extproc decides again', async () => {
    const core = kube.adminKubeConfig.makeApiClient(CoreV1Api);
    await core.deleteNamespacedService({ namespace: 'fledge-system', name: 'fledge-extproc' });
    // istiod drops the ext_proc cluster; the gateway keeps the filter and fails open.
    await waitUntil('requests pass the gateway without an extproc decision', async () => (await send(B, { user: 'probe-0' })).headers['x-fledge-reason'] === undefined, 30_000);
    await expectRolloutPausedForNoDecisions(D);
    const service = parseAllDocuments(manifest('extproc.yaml')).map((d) => d.toJS() as { kind?: string }).find((d) => d.kind === 'Service');
    await kube.apply(JSON.stringify(service));
    await waitUntil('extproc decides again through the gateway', async () => (await send(B, { user: 'probe-0' })).headers['x-fledge-reason'] !== undefined, 30_000);
  }, 120_000);

  it('with no endpoint behind the extproc Service the gateway fails open to the weighted route: no decisions, no failed request', async () => {
    await kube.adminKubeConfig.makeApiClient(CustomObjectsApi).deleteNamespacedCustomObject({ group: 'networking.istio.io', version: 'v1', plural: 'workloadentries', namespace: 'fledge-system', name: 'fledge-extproc' });
    await waitUntil('requests pass the gateway without an extproc decision', async () => (await send(A, { user: 'probe-0' })).headers['x-fledge-reason'] === undefined, 30_000);
    // The rolled-back service routes 100/0 by weight; without extproc nobody gets a decision header.
    const answers = await mapLimit(PROBE_USERS.slice(0, 100), 8, (user) => send(A, { user }));
    expect(new Set(answers.map((r) => `${r.status} ${r.servedBy} ${r.headers['x-fledge-reason'] ?? 'no decision'}`))).toEqual(new Set([`200 ${A.stable} no decision`]));
  }, 60_000);
});
