// A candidate gets traffic only once it can serve: the controller (as its ServiceAccount)
// against a real kube-apiserver and kube-controller-manager, whose Deployment and
// ReplicaSet controllers make the candidate's ReplicaSet and Pods and count them available
// once the test reports them Ready (what a kubelet would do after a readiness probe).
import { readFile } from 'node:fs/promises';
import { AppsV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { startControllerApp, type ControllerApp } from '../../controller/kube/controller-app.js';
import { startInferenceMetrics, type InferenceMetricsEndpoint } from '../harness/inference-metrics.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { makeDeploymentAvailable, makeDeploymentUnavailable, podsOf, reportPodsReady } from '../harness/pods.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { annotate, createModelService, eventsOnceRecorded, freshNamespace, readVirtualService, waitForStatus, weightsOf } from '../harness/rollout-fixture.js';

const TIME_SCALE = 600; // the default 10m availability timeout lasts 1s
/** setWeight 10, a pause only a person ends, then 100. */
const MANUAL = 'kind: Rollout\nmetadata: {name: manual}\nspec:\n  strategy:\n    canary:\n      steps:\n        - setWeight: 10\n        - pause: {}\n        - setWeight: 100\n';

let kube: KubeHarness;
let controllerKc: KubeConfig;
let admin: KubeConfig;
let metrics: InferenceMetricsEndpoint;
let prometheus: RunningPrometheus;
const running: ControllerApp[] = [];

beforeAll(async () => {
  metrics = await startInferenceMetrics();
  [kube, prometheus] = await Promise.all([startKube(), startPrometheus([metrics.target], 500)]);
  admin = kube.adminKubeConfig;
  await kube.apply(await readFile(new URL('../../manifests/rbac.yaml', import.meta.url), 'utf8'));
  controllerKc = await kube.kubeconfigFor('fledge-controller', 'fledge-system');
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

afterAll(async () => {
  await Promise.all([kube?.stop(), prometheus?.stop(), metrics?.close()]);
});

/** The controller with production settings (default 10m availability timeout), time-scaled. */
async function startController(namespace: string, timeScale = TIME_SCALE): Promise<ControllerApp> {
  const app = await startControllerApp({
    kubeConfig: controllerKc,
    namespace,
    prometheusUrl: prometheus.url,
    timeScale,
    leaseNamespace: 'fledge-system',
    leaseName: `lease-${namespace}`,
    identity: `test-${namespace}`,
    adminHost: '127.0.0.1',
    adminPort: 0,
    logger: createLogger('controller-test', process.env.FLEDGE_TEST_LOG === 'debug' ? 'debug' : 'warn'),
  });
  running.push(app);
  return app;
}

describe('no weight to a candidate without an available replica', () => {
  it('waits while the Pods load, says so, and sets the weight once they report Ready (after minReadySeconds)', async () => {
    const ns = freshNamespace('loading');
    await createModelService(admin, ns, { policies: { manual: MANUAL }, annotations: { 'fledge.dev/policy': 'manual' }, candidateReady: false });
    // Ready Pods count as available only after 2 s (the ReplicaSet controller's rule).
    await admin.makeApiClient(AppsV1Api).patchNamespacedDeployment({ namespace: ns, name: 'model-v2', body: { spec: { minReadySeconds: 2 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    // Slow time (60x: the 10m timeout is 10 s) so the wait outlasts minReadySeconds.
    await startController(ns, 60);

    const waiting = await waitForStatus(admin, ns, 'model-v2', 'waiting for the candidate', (s) => s.message.includes('waiting for an available candidate replica'));
    expect(waiting).toMatchObject({ phase: 'Progressing', weight: 0, step: 1 });
    expect(waiting.message).toContain('0/1 replicas available');
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([100, 0]);

    await reportPodsReady(admin, ns, await podsOf(admin, ns, 'model-v2'), true);
    // Ready since the condition's transition time as the API server stored it (whole seconds).
    const [pod] = await podsOf(admin, ns, 'model-v2');
    const readyAt = new Date(pod!.status!.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime!).getTime();
    const at10 = await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (s) => s.phase === 'Paused' && s.weight === 10);
    // The weight step (when step 2 started) waited for minReadySeconds after the Pods were Ready.
    expect(at10.stepStartedAt - readyAt).toBeGreaterThanOrEqual(2_000);
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([90, 10]);
  });

  it('Pods that never become Ready: waiting message, then Paused after the availability timeout, traffic untouched', async () => {
    const ns = freshNamespace('neverready');
    await createModelService(admin, ns, { policies: { manual: MANUAL }, annotations: { 'fledge.dev/policy': 'manual' }, candidateReady: false });
    await startController(ns);
    const s = await waitForStatus(admin, ns, 'model-v2', 'Paused', (st) => st.phase !== 'Progressing');
    expect(s.phase, s.message).toBe('Paused');
    expect(s.pause?.reason).toBe('candidate-unavailable');
    expect(s.weight).toBe(0);
    expect(s.message).toContain('candidate has no available replica after 10m (0/1 replicas available)');
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([100, 0]);
    const paused = (await eventsOnceRecorded(admin, ns, 'model-v2', 'CandidateUnavailable')).find((e) => e.reason === 'CandidateUnavailable');
    expect(paused?.type).toBe('Warning');

    // Once the Pods load, resume waits again and this time sets the weight.
    await makeDeploymentAvailable(admin, ns, 'model-v2');
    await annotate(admin, ns, 'model-v2', { 'fledge.dev/action': 'resume' });
    await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (st) => st.phase === 'Paused' && st.weight === 10);
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([90, 10]);
  });

  it('a candidate that loses its available replicas mid-rollout is rolled back', async () => {
    const ns = freshNamespace('lost');
    await createModelService(admin, ns, { policies: { manual: MANUAL }, annotations: { 'fledge.dev/policy': 'manual' } });
    await startController(ns);
    await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (s) => s.phase === 'Paused' && s.weight === 10);
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([90, 10]);

    await makeDeploymentUnavailable(admin, ns, 'model-v2');
    const s = await waitForStatus(admin, ns, 'model-v2', 'RolledBack', (st) => st.phase !== 'Paused');
    expect(s.phase, s.message).toBe('RolledBack');
    expect(s.weight).toBe(0);
    expect(s.message).toContain('candidate lost its available replicas (0/1 available) while serving 10%');
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([100, 0]);
    expect((await eventsOnceRecorded(admin, ns, 'model-v2', 'CandidateUnavailable')).find((e) => e.reason === 'CandidateUnavailable')?.type).toBe('Warning');
  });
});
