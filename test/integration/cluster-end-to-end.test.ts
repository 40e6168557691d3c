// Both halves in cluster mode, every part real: the controller (as its ServiceAccount)
// moves the VirtualService through the seed's steps; extproc (as its ServiceAccount) reads
// the weights, subsets and rollout hashes the controller writes there and routes real
// traffic through Envoy to simulated models; Prometheus scrapes extproc, and the
// controller's analysis reads those series by the canary's pod-template-hash.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { startControllerApp, type ControllerApp } from '../../controller/kube/controller-app.js';
import { TrafficGenerator } from '../../local/traffic.js';
import { DataPlane } from '../harness/dataplane.js';
import { followVirtualService } from '../harness/istio-standin.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { annotate, createModelService, eventsFor, freshNamespace, readVirtualService, waitForStatus, weightsOf } from '../harness/rollout-fixture.js';
import type { KnobsInput } from '../../sim/knobs.js';
import { PROBE_TEST_GOLDEN_FILE, PROBE_TEST_QA } from '../harness/golden-answers.js';

const seed = (name: string) => readFile(resolve(import.meta.dirname, '../fixtures/seed', name), 'utf8');
// The seed's pauses are 10m and 15m: 120x makes them 5 s and 7.5 s, long enough for
// Prometheus to hold two scrapes of the canary's new series (rate() needs them).
const TIME_SCALE = 120;
const GOLDEN_FILE = PROBE_TEST_GOLDEN_FILE;
const QA = PROBE_TEST_QA;

/** Lets traffic run until 40 requests sent after `since` are answered, then stops it; returns those answers. */
async function answersAfter(traffic: TrafficGenerator, since: number) {
  const deadline = Date.now() + 20_000;
  while (traffic.answers.filter((a) => a.sentAt > since).length < 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await traffic.stop();
  const after = traffic.answers.filter((a) => a.sentAt > since);
  expect(after.length).toBeGreaterThanOrEqual(40);
  return after;
}

describe('controller and extproc meet on the VirtualService (real kube-apiserver, Envoy, Prometheus)', () => {
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

  /** One namespace with the model service, its data plane, Prometheus on extproc, a controller, and traffic. */
  async function rollout(prefix: string, canaryKnobs: KnobsInput) {
    const admin = kube.adminKubeConfig;
    const namespace = freshNamespace(prefix);
    const policy = `${await seed('rollout.yaml')}\n---\n${await seed('analysis-template.yaml')}`;
    const svc = await createModelService(admin, namespace, { policies: { 'inference-service': policy }, optIn: false });

    const extprocKubeconfig = await kube.writeKubeconfig(await kube.kubeconfigFor('fledge-extproc', 'fledge-system'), `extproc-${namespace}`);
    const healthy: KnobsInput = { latency: { kind: 'fixed', ms: 5 }, hallucinationRate: 0, golden: QA };
    const dp = new DataPlane({
      virtualService: { kubeconfig: extprocKubeconfig, namespace },
      // Every response sampled, so the quality gauge has the canary's series from the first
      // requests; quality and hallucination are extproc's golden checks of the answer text.
      extprocConfig: { quality: { sampling: { defaultRate: 1 }, golden: { file: GOLDEN_FILE, inspect: 'sampled' } } },
      knobs: { 'model/v1': healthy, 'model/v2': { ...healthy, ...canaryKnobs } },
    });
    await dp.start([{ name: 'model', stable: 'v1', canary: 'v2' }]);
    cleanups.push(() => dp.stop());
    // Envoy follows the VirtualService the controller writes (token, header routes, weights), as istiod would push it.
    const follower = followVirtualService(dp, admin, namespace, 'model', 'model');
    cleanups.push(() => follower.stop());
    await dp.waitForState((s) => s.services.some((x) => x.service === 'model'));

    const prometheus: RunningPrometheus = await startPrometheus([`127.0.0.1:${dp.adminPort}`], 500);
    cleanups.push(() => prometheus.stop());
    // Prometheus applies new targets on a 5 s tick: wait for its first scrapes of extproc.
    await prometheus.waitForScrapes(2);

    const traffic = new TrafficGenerator({
      port: dp.listenPort,
      host: 'model',
      rps: 80,
      users: Array.from({ length: 400 }, (_, i) => ({ id: `user-${i}` })),
      // Users ask the golden questions, so each answer is checked against its known answer.
      request: (i) => ({ kind: 'golden', body: { model: 'model', messages: [{ role: 'user', content: QA[i % QA.length]!.prompt }] } }),
    });
    traffic.start();
    cleanups.push(() => traffic.stop());

    const controller: ControllerApp = await startControllerApp({
      kubeConfig: await kube.kubeconfigFor('fledge-controller', 'fledge-system'),
      namespace,
      prometheusUrl: prometheus.url,
      timeScale: TIME_SCALE,
      leaseNamespace: 'fledge-system',
      leaseName: `lease-${namespace}`,
      identity: `e2e-${namespace}`,
      adminHost: '127.0.0.1',
      adminPort: 0,
      // As manifests/controller.yaml: the rollout starts only if extproc's evaluators cover its metrics.
      extprocAdminUrl: `http://127.0.0.1:${dp.adminPort}`,
      logger: createLogger('controller-e2e', 'warn'),
    });
    cleanups.push(() => controller.stop());
    await annotate(admin, namespace, 'model-v2', { 'fledge.dev/virtual-service': 'model', 'fledge.dev/policy': 'inference-service' });
    return { admin, namespace, svc, dp, prometheus, traffic };
  }

  it('promotes a healthy candidate: extproc follows every weight, metrics carry the canary hash', async () => {
    const { admin, namespace, svc, dp, prometheus, traffic } = await rollout('healthy', {});
    // extproc learns the canary subset and hashes from what the controller wrote.
    await dp.waitForState((s) => s.services.some((x) => x.service === 'model' && x.canary === 'v2' && x.canaryWeight === 5), 30_000);
    const done = await waitForStatus(admin, namespace, 'model-v2', 'a verdict', (s) => ['Promoted', 'RolledBack', 'Paused', 'Invalid'].includes(s.phase), 90_000);
    expect(done.phase, done.message).toBe('Promoted');
    expect(weightsOf(await readVirtualService(admin, namespace))).toEqual([0, 100]);
    // After the promotion the candidate is the stable version and nothing is rolling out.
    await dp.waitForState((s) => s.services.some((x) => x.service === 'model' && x.stable === 'v2' && x.canary === undefined));
    const fullAt = Date.now();

    // The series the analysis read are extproc's, labelled with the canary's pod-template-hash.
    const canaryRequests = await prometheus.query(`sum(inference_requests_total{rollout_hash="${svc.canaryHash}"})`);
    expect(canaryRequests[0]).toBeGreaterThan(0);
    const stableRequests = await prometheus.query(`sum(inference_requests_total{rollout_hash="${svc.stableHash}"})`);
    expect(stableRequests[0]).toBeGreaterThan(0);
    expect(done.lastAnalysis?.metrics.map((m) => m.phase)).toEqual(['Successful', 'Successful', 'Successful', 'Successful']);
    // The controller read extproc's evaluator coverage at the start and found the service covered.
    const events = await eventsFor(admin, namespace, 'model-v2');
    expect(events.map((e) => e.reason)).not.toContain('EvaluatorCoverageUnknown');
    expect(events.map((e) => e.reason)).not.toContain('Invalid');

    // Once extproc runs the promotion, every user is on the candidate.
    const after = await answersAfter(traffic, fullAt + 100);
    expect(new Set(after.map((a) => a.servedBy))).toEqual(new Set(['v2']));
    expect(traffic.failures()).toEqual([]);
  });

  it('rolls back a hallucinating candidate; no user-facing request fails and traffic returns to stable', async () => {
    const { admin, namespace, dp, traffic } = await rollout('hallucinating', { hallucinationRate: 0.3 });
    const done = await waitForStatus(admin, namespace, 'model-v2', 'a verdict', (s) => ['Promoted', 'RolledBack', 'Paused', 'Invalid'].includes(s.phase), 90_000);
    expect(done.phase, done.message).toBe('RolledBack');
    // Its wrong golden answers fail both the seed's hallucination-rate and quality-score.
    expect(done.message).toMatch(/hallucination-rate|quality-score/);
    expect(weightsOf(await readVirtualService(admin, namespace))).toEqual([100, 0]);
    await dp.waitForState((s) => s.services.some((x) => x.service === 'model' && x.canaryWeight === 0));
    // Once extproc runs weight 0, every user is back on stable.
    const after = await answersAfter(traffic, Date.now() + 100);
    expect(new Set(after.map((a) => a.servedBy))).toEqual(new Set(['v1']));
    expect(traffic.failures()).toEqual([]);
  });
});
