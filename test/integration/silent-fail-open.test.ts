// A silent fail-open is loud: Envoy's ext_proc filter runs with failure_mode_allow, so when
// it cannot reach extproc every request still succeeds on the weighted route and nothing
// else looks wrong. Real kube-apiserver (+ controller-manager), Envoy, extproc, Prometheus
// scraping Envoy's /stats/prometheus and extproc's /metrics: with the ext_proc cluster on a
// dead port the controller pauses the rollout naming the likely cause, and `fledge status`
// shows it; with the path intact the same rollout is promoted.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { startControllerApp } from '../../controller/kube/controller-app.js';
import { freePort } from '../../local/ports.js';
import { TrafficGenerator } from '../../local/traffic.js';
import { CLI, DataPlane } from '../harness/dataplane.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { annotate, createModelService, eventsOnceRecorded, freshNamespace, readVirtualService, waitForStatus, weightsOf } from '../harness/rollout-fixture.js';

const run = promisify(execFile);
const TIME_SCALE = 600; // the 1h pause lasts 6 s; the check runs every max(1 s, 30 s / 600)
/** setWeight 10, a timed pause (Progressing: the check runs), then 100. */
const TIMED = 'kind: Rollout\nmetadata: {name: timed}\nspec:\n  strategy:\n    canary:\n      steps:\n        - setWeight: 10\n        - pause: {duration: 1h}\n        - setWeight: 100\n';
/** Outside Istio: the local Envoy's own upstream request counter for the service's clusters. */
const ENVOY_TRAFFIC_QUERY = 'sum(increase(envoy_cluster_upstream_rq_total{envoy_cluster_name=~"{{service}}--.*"}[1m]))';
const DECISIONS = 'sum(increase(fledge_extproc_decisions_total{service="model"}[2m]))';

describe('silent fail-open detection (real Envoy, extproc, Prometheus, kube-apiserver)', () => {
  let kube: KubeHarness;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    kube = await startKube();
    await kube.apply(await readFile(resolve(import.meta.dirname, '../../manifests/rbac.yaml'), 'utf8'));
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  afterAll(async () => {
    await kube?.stop();
  });

  /** The model service, extproc routing from its VirtualService, Envoy (ext_proc at `envoyExtprocPort` if given), Prometheus, traffic, and the controller. */
  async function stack(prefix: string, envoyExtprocPort?: number) {
    const admin = kube.adminKubeConfig;
    const namespace = freshNamespace(prefix);
    await createModelService(admin, namespace, { policies: { timed: TIMED }, optIn: false });
    const extprocKubeconfig = await kube.writeKubeconfig(await kube.kubeconfigFor('fledge-extproc', 'fledge-system'), `extproc-${namespace}`);
    const dp = new DataPlane({ virtualService: { kubeconfig: extprocKubeconfig, namespace }, ...(envoyExtprocPort ? { envoyExtprocPort } : {}) });
    await dp.start([{ name: 'model', stable: 'v1', canary: 'v2' }]);
    cleanups.push(() => dp.stop());
    await dp.waitForState((s) => s.services.some((x) => x.service === 'model'));

    const prometheus: RunningPrometheus = await startPrometheus([`127.0.0.1:${dp.adminPort}`], 500, [new URL(dp.envoy.adminUrl).host]);
    cleanups.push(() => prometheus.stop());
    const traffic = new TrafficGenerator({
      port: dp.listenPort,
      host: 'model',
      rps: 40,
      users: Array.from({ length: 100 }, (_, i) => ({ id: `user-${i}` })),
      request: (i) => ({ kind: 'chat', body: { model: 'model', messages: [{ role: 'user', content: `question ${i}` }] } }),
    });
    traffic.start();
    cleanups.push(() => traffic.stop());
    // Two scrapes of both targets with traffic flowing: the counters' increase() is defined.
    await prometheus.waitForScrapes(3);

    const controller = await startControllerApp({
      kubeConfig: await kube.kubeconfigFor('fledge-controller', 'fledge-system'),
      namespace,
      prometheusUrl: prometheus.url,
      timeScale: TIME_SCALE,
      leaseNamespace: 'fledge-system',
      leaseName: `lease-${namespace}`,
      identity: `failopen-${namespace}`,
      adminHost: '127.0.0.1',
      adminPort: 0,
      decisionCheck: { queries: { traffic: ENVOY_TRAFFIC_QUERY } },
      logger: createLogger('controller-failopen', 'warn'),
    });
    cleanups.push(() => controller.stop());
    await annotate(admin, namespace, 'model-v2', { 'fledge.dev/virtual-service': 'model', 'fledge.dev/policy': 'timed' });
    return { admin, namespace, dp, prometheus, traffic };
  }

  it('ext_proc cluster on a dead port: requests succeed undecided → Paused naming the likely cause, shown by fledge status', async () => {
    const { admin, namespace, prometheus, traffic } = await stack('deadport', await freePort());
    const s = await waitForStatus(admin, namespace, 'model-v2', 'a pause', (st) => st.phase !== 'Progressing', 30_000);
    expect(s.phase, s.message).toBe('Paused');
    expect(s.pause?.reason).toBe('no-decisions');
    expect(s.message).toMatch(/EnvoyFilter not applied or ext_proc cluster unreachable: \d+ requests reached model but extproc decided none/);
    // The pause keeps the weight where it was; it never promotes.
    expect(s.weight).toBe(10);
    expect(weightsOf(await readVirtualService(admin, namespace))).toEqual([90, 10]);
    // What Envoy hides: every request succeeded, and extproc decided none of them.
    expect(traffic.answers.length).toBeGreaterThan(20);
    expect(traffic.failures()).toEqual([]);
    expect(await prometheus.query(DECISIONS)).toEqual([]);
    expect((await eventsOnceRecorded(admin, namespace, 'model-v2', 'NoDecisions')).find((e) => e.reason === 'NoDecisions')?.type).toBe('Warning');

    const { stdout } = await run(process.execPath, [CLI, 'status', '-n', namespace, '--kubeconfig', kube.adminKubeconfigPath], { env: { ...process.env, FLEDGE_LOG_LEVEL: 'warn' } });
    expect(stdout).toMatch(/model-v2\s+Paused/);
    expect(stdout).toContain('EnvoyFilter not applied or ext_proc cluster unreachable');
  });

  it('the same rollout with extproc reachable is not paused and is promoted', async () => {
    const { admin, namespace, prometheus, traffic } = await stack('reachable');
    const s = await waitForStatus(admin, namespace, 'model-v2', 'a verdict', (st) => st.phase !== 'Progressing', 30_000);
    expect(s.phase, s.message).toBe('Promoted');
    // The check had something to judge: traffic above its minimum, and decisions.
    const [requests] = await prometheus.query(ENVOY_TRAFFIC_QUERY.replace('{{service}}', 'model'));
    expect(requests).toBeGreaterThanOrEqual(20);
    const [decisions] = await prometheus.query(DECISIONS);
    expect(decisions).toBeGreaterThan(0);
    expect(traffic.failures()).toEqual([]);
    const events = await eventsOnceRecorded(admin, namespace, 'model-v2', 'RolloutCompleted');
    expect(events.map((e) => e.reason)).not.toContain('NoDecisions');
  });
});
