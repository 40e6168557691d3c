// The controller's resilience against a real kube-apiserver, authenticated as its
// ServiceAccount: restart mid-rollout, two replicas with Lease leader election (as real
// `fledge controller` processes), VirtualService edits racing the controller, and the CLI.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AppsV1Api, CoordinationV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { VirtualService } from '../../controller/traffic/istio/virtual-service.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { startControllerApp, type ControllerApp } from '../../controller/kube/controller-app.js';
import { VirtualServiceUpdater } from '../../controller/traffic/istio/istio-router.js';
import { applyWeight } from '../../controller/traffic/istio/virtual-service.js';
import { startProcess, waitForHttp, type ManagedProcess } from '../../local/child-process.js';
import { freePort } from '../../local/ports.js';
import { startInferenceMetrics, type InferenceMetricsEndpoint } from '../harness/inference-metrics.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { makeDeploymentAvailable } from '../harness/pods.js';
import { annotate, createModelService, eventsOnceRecorded, freshNamespace, hashOnceCreated, readStatus, readVirtualService, VS_API, waitForStatus, waitUntil, weightedVirtualService, weightsOf } from '../harness/rollout-fixture.js';

const TIME_SCALE = 600;
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const run = promisify(execFile);

/** setWeight 10, a pause of 30m (3s at 600x), then 100. */
const TIMED = 'kind: Rollout\nmetadata: {name: timed}\nspec:\n  strategy:\n    canary:\n      steps:\n        - setWeight: 10\n        - pause: {duration: 30m}\n        - setWeight: 100\n';
/** setWeight 10, then a pause only a person ends, then 100. */
const MANUAL = 'kind: Rollout\nmetadata: {name: manual}\nspec:\n  strategy:\n    canary:\n      steps:\n        - setWeight: 10\n        - pause: {}\n        - setWeight: 100\n';

let kube: KubeHarness;
let controllerKc: KubeConfig;
let controllerKubeconfigFile: string;
let admin: KubeConfig;
let metrics: InferenceMetricsEndpoint;
let prometheus: RunningPrometheus;
const apps: ControllerApp[] = [];
const procs: ManagedProcess[] = [];
const logDir = mkdtempSync(join(tmpdir(), 'fledge-controller-test-'));

beforeAll(async () => {
  metrics = await startInferenceMetrics();
  [kube, prometheus] = await Promise.all([startKube(), startPrometheus([metrics.target], 500)]);
  admin = kube.adminKubeConfig;
  await kube.apply(await readFile(new URL('../../manifests/rbac.yaml', import.meta.url), 'utf8'));
  controllerKc = await kube.kubeconfigFor('fledge-controller', 'fledge-system');
  controllerKubeconfigFile = await kube.writeKubeconfig(controllerKc, 'controller');
});

afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.stop()));
  await Promise.all(procs.splice(0).map((p) => p.stop()));
});

afterAll(async () => {
  await Promise.all([kube?.stop(), prometheus?.stop(), metrics?.close()]);
});

async function startController(namespace: string, identity = `test-${namespace}`): Promise<ControllerApp> {
  const app = await startControllerApp({
    kubeConfig: controllerKc,
    namespace,
    prometheusUrl: prometheus.url,
    timeScale: TIME_SCALE,
    leaseNamespace: 'fledge-system',
    leaseName: `lease-${namespace}`,
    identity,
    adminHost: '127.0.0.1',
    adminPort: 0,
    logger: createLogger('controller-test', process.env.FLEDGE_TEST_LOG === 'debug' ? 'debug' : 'warn'),
  });
  apps.push(app);
  return app;
}

async function leaseHolder(name: string): Promise<string | undefined> {
  const lease = await admin.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: 'fledge-system', name });
  return lease.spec?.holderIdentity ?? undefined;
}

describe('restart', () => {
  it('a controller restarted mid-pause resumes at the same step with the pause time already spent', async () => {
    const ns = freshNamespace('restart');
    await createModelService(admin, ns, { policies: { timed: TIMED }, annotations: { 'fledge.dev/policy': 'timed' } });
    const first = await startController(ns, 'first');
    const pausing = await waitForStatus(admin, ns, 'model-v2', 'the pause step', (s) => s.stepIndex === 1);
    expect(pausing).toMatchObject({ phase: 'Progressing', weight: 10, step: 2 });
    await first.stop();
    apps.splice(apps.indexOf(first), 1);

    // Down for two of the pause's three seconds: the status must not move meanwhile.
    await waitUntil('2s of the pause to pass', async () => Date.now() >= pausing.stepStartedAt + 2_000);
    const whileDown = (await readStatus(admin, ns, 'model-v2')).status!;
    expect(whileDown).toMatchObject({ stepIndex: 1, stepStartedAt: pausing.stepStartedAt });

    const restartedAt = Date.now();
    await startController(ns, 'second');
    const done = await waitForStatus(admin, ns, 'model-v2', 'Promoted', (s) => s.phase === 'Promoted');
    // The pause ended 3s after it began, not 3s after the restart.
    expect(done.updatedAt).toBeGreaterThanOrEqual(pausing.stepStartedAt + 3_000);
    expect(done.updatedAt).toBeLessThan(restartedAt + 3_000);
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([0, 100]);
  });
});

describe('leader election (two fledge controller processes)', () => {
  function controllerProcess(ns: string, id: string, adminPort: number): ManagedProcess {
    const args = [CLI, 'controller', '--kubeconfig', controllerKubeconfigFile, '-n', ns, '--prometheus-url', prometheus.url, '--time-scale', String(TIME_SCALE), '--lease-name', `lease-${ns}`, '--id', id, '--admin-port', String(adminPort), '--lease-duration', '2', '--renew-deadline', '1.5', '--retry-period', '0.25'];
    const proc = startProcess(`controller-${id}`, process.execPath, args, join(logDir, `${ns}-${id}.log`), { ...process.env, FLEDGE_LOG_LEVEL: 'info' });
    procs.push(proc);
    return proc;
  }

  it('only the leader acts; when it is killed the other takes over', async () => {
    const ns = freshNamespace('leader');
    await createModelService(admin, ns, { policies: { manual: MANUAL }, optIn: false });
    const [portA, portB] = [await freePort(), await freePort()];
    const a = controllerProcess(ns, 'replica-a', portA);
    await waitForHttp(a, `http://127.0.0.1:${portA}/healthz`);
    await waitUntil('replica-a to lead', async () => (await leaseHolder(`lease-${ns}`)) === 'replica-a');
    const b = controllerProcess(ns, 'replica-b', portB);
    await waitForHttp(b, `http://127.0.0.1:${portB}/healthz`);

    await annotate(admin, ns, 'model-v2', { 'fledge.dev/virtual-service': 'model', 'fledge.dev/policy': 'manual' });
    await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (s) => s.phase === 'Paused' && s.weight === 10);
    const before = await eventsOnceRecorded(admin, ns, 'model-v2', 'Paused');
    expect(before.length).toBeGreaterThan(0);
    expect(new Set(before.map((e) => e.host))).toEqual(new Set(['replica-a']));
    expect(await (await fetch(`http://127.0.0.1:${portB}/metrics`)).text()).toMatch(/^fledge_controller_leader 0$/m);
    expect(await (await fetch(`http://127.0.0.1:${portA}/metrics`)).text()).toMatch(/^fledge_controller_leader 1$/m);

    await a.kill();
    await waitUntil('replica-b to take the Lease over', async () => (await leaseHolder(`lease-${ns}`)) === 'replica-b', 15_000);
    await annotate(admin, ns, 'model-v2', { 'fledge.dev/action': 'promote' });
    const done = await waitForStatus(admin, ns, 'model-v2', 'Promoted', (s) => s.phase === 'Promoted');
    expect(done.weight).toBe(100);
    const after = (await eventsOnceRecorded(admin, ns, 'model-v2', 'RolloutCompleted')).slice(before.length);
    expect(after.map((e) => e.reason)).toContain('RolloutCompleted');
    expect(new Set(after.map((e) => e.host))).toEqual(new Set(['replica-b']));
    expect((await readStatus(admin, ns, 'model-v2')).deployment.metadata?.annotations?.['fledge.dev/action']).toBeUndefined();
    const metricsB = await (await fetch(`http://127.0.0.1:${portB}/metrics`)).text();
    expect(metricsB).toMatch(/^fledge_controller_rollouts\{phase="Promoted"\} 1$/m);
    expect(metricsB).toMatch(/^fledge_controller_reconcile_duration_seconds_count\{result="ok"\} [1-9]/m);
    expect((await fetch(`http://127.0.0.1:${portB}/readyz`)).status).toBe(200);
  });
});

describe('revisions and repaired input', () => {
  it('a new pod template (revision 2 from the Deployment controller) restarts the rollout at step 1', async () => {
    const ns = freshNamespace('revision');
    await createModelService(admin, ns, { policies: { manual: MANUAL }, annotations: { 'fledge.dev/policy': 'manual' } });
    await startController(ns);
    const first = await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (s) => s.phase === 'Paused' && s.weight === 10);
    await annotate(admin, ns, 'model-v2', { 'fledge.dev/action': 'promote' });
    await waitForStatus(admin, ns, 'model-v2', 'Promoted', (s) => s.phase === 'Promoted');

    // The template changes: the Deployment controller starts revision 2 with a new ReplicaSet
    // and hash; its Pods take traffic only once they report Ready.
    const apps = admin.makeApiClient(AppsV1Api);
    await apps.patchNamespacedDeployment(
      { namespace: ns, name: 'model-v2', body: { spec: { template: { spec: { containers: [{ name: 'model', image: 'example.invalid/model:v2.1' }] } } } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    const newHash = await hashOnceCreated(admin, ns, 'model-v2');
    expect(newHash).not.toBe(first.target?.canaryHash);
    const revision = (await apps.readNamespacedDeployment({ namespace: ns, name: 'model-v2' })).metadata?.annotations?.['deployment.kubernetes.io/revision'];
    expect(revision).toBe('2');
    await makeDeploymentAvailable(admin, ns, 'model-v2');
    const again = await waitForStatus(admin, ns, 'model-v2', 'the new revision at 10%', (s) => s.target?.canaryHash === newHash && s.phase === 'Paused');
    expect(again).toMatchObject({ weight: 10, step: 2 });
    expect(again.stepStartedAt).toBeGreaterThan(first.stepStartedAt);
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([90, 10]);
    expect((await eventsOnceRecorded(admin, ns, 'model-v2', 'NewRevision')).map((e) => e.reason)).toContain('NewRevision');
  });

  it('Invalid for a missing VirtualService; once it exists, retry starts the rollout', async () => {
    const ns = freshNamespace('repair');
    await createModelService(admin, ns, { withoutVirtualService: true, policies: { manual: MANUAL }, annotations: { 'fledge.dev/policy': 'manual' } });
    await startController(ns);
    await waitForStatus(admin, ns, 'model-v2', 'Invalid', (s) => s.phase === 'Invalid');
    await admin.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ ...VS_API, namespace: ns, body: weightedVirtualService('model', ns) });
    await annotate(admin, ns, 'model-v2', { 'fledge.dev/action': 'retry' });
    const s = await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (st) => st.phase === 'Paused' && st.weight === 10);
    expect(s.inputProblem).toBeUndefined();
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([90, 10]);
    const repaired = await eventsOnceRecorded(admin, ns, 'model-v2', 'Paused');
    expect(repaired.filter((e) => e.reason === 'ActionIgnored').map((e) => e.message)).toEqual([]);
  });
});

describe('concurrent VirtualService edits', () => {
  async function editAsSomeoneElse(ns: string, edit: (vs: VirtualService) => void): Promise<void> {
    const custom = admin.makeApiClient(CustomObjectsApi);
    const vs = await readVirtualService(admin, ns);
    edit(vs);
    await custom.replaceNamespacedCustomObject({ ...VS_API, namespace: ns, name: 'model', body: vs });
  }

  it('a write that conflicts is retried on a fresh copy: the other edit survives and our weight lands', async () => {
    const ns = freshNamespace('conflict');
    await createModelService(admin, ns, { optIn: false });
    const updater = new VirtualServiceUpdater(controllerKc);
    let attempts = 0;
    const writes = await updater.update(
      { namespace: ns, name: 'model' },
      async (vs) => {
        attempts++;
        // Someone else writes between our read and our replace, once.
        if (attempts === 1) await editAsSomeoneElse(ns, (theirs) => (theirs.spec.http![2]!['timeout'] = '7s'));
        return applyWeight(vs, { stable: 'v1', canary: 'v2' }, 30);
      },
      'test weight',
    );
    expect(writes).toBe(1);
    expect(attempts).toBe(2);
    const vs = await readVirtualService(admin, ns);
    expect(vs.spec.http?.[2]?.['timeout']).toBe('7s');
    expect(weightsOf(vs)).toEqual([70, 30]);
  });

  it('edits made during a rollout (a new route, a header on the weighted route) survive later weight changes', async () => {
    const ns = freshNamespace('edit');
    await createModelService(admin, ns, { policies: { manual: MANUAL }, annotations: { 'fledge.dev/policy': 'manual' } });
    await startController(ns);
    await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (s) => s.phase === 'Paused' && s.weight === 10);
    await editAsSomeoneElse(ns, (vs) => {
      vs.spec.http!.unshift({ name: 'debug', match: [{ headers: { 'x-debug': { exact: '1' } } }], route: [{ destination: { host: 'model', subset: 'v1' } }] });
      vs.spec.http!.find((h) => h.name === 'weighted')!['headers'] = { request: { set: { 'x-team': 'ml' } } };
    });
    await annotate(admin, ns, 'model-v2', { 'fledge.dev/action': 'promote' });
    await waitForStatus(admin, ns, 'model-v2', 'Promoted', (s) => s.phase === 'Promoted');
    const vs = await readVirtualService(admin, ns);
    // The controller's per-version route leads (after the promotion only the new stable's);
    // the user's own routes keep their order after it.
    expect(vs.spec.http?.map((h) => h.name)).toEqual(['fledge-v2', 'debug', 'weighted']);
    expect(vs.spec.http?.[2]?.['headers']).toEqual({ request: { set: { 'x-team': 'ml' } } });
    expect(weightsOf(vs)).toEqual([0, 100]);
  });
});

describe('CLI against the cluster', () => {
  async function fledge(...args: string[]): Promise<string> {
    const { stdout } = await run(process.execPath, [CLI, ...args, '--kubeconfig', kube.adminKubeconfigPath], { env: { ...process.env, FLEDGE_LOG_LEVEL: 'warn' } });
    return stdout;
  }

  it('status shows the rollout; promote and abort are consumed by the controller', async () => {
    const ns = freshNamespace('cli');
    await createModelService(admin, ns, { policies: { manual: MANUAL }, annotations: { 'fledge.dev/policy': 'manual' } });
    await startController(ns);
    await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (s) => s.phase === 'Paused' && s.weight === 10);

    const table = await fledge('status', '-n', ns);
    expect(table.split('\n')[0]).toMatch(/^ROLLOUT\s+PHASE\s+PROGRESS\s+STEP\s+WEIGHT\s+ANALYSIS\s+MESSAGE$/);
    expect(table).toMatch(/model-v2\s+Paused\s+\[###-------\]\s+2\/3\s+10%/);
    const json = JSON.parse(await fledge('status', '-n', ns, '--json')) as { rollout: string; phase: string; weight: number }[];
    expect(json).toMatchObject([{ rollout: 'model-v2', phase: 'Paused', weight: 10 }]);

    expect(await fledge('promote', 'model-v2', '-n', ns)).toContain(`promote requested for ${ns}/model-v2`);
    const promoted = await waitForStatus(admin, ns, 'model-v2', 'Promoted', (s) => s.phase === 'Promoted');
    expect(promoted.weight).toBe(100);
    expect((await readStatus(admin, ns, 'model-v2')).deployment.metadata?.annotations?.['fledge.dev/action']).toBeUndefined();

    // abort after completion changes nothing and says so in an Event.
    await fledge('abort', 'model-v2', '-n', ns);
    await waitUntil('the abort to be consumed', async () => (await readStatus(admin, ns, 'model-v2')).deployment.metadata?.annotations?.['fledge.dev/action'] === undefined);
    expect((await eventsOnceRecorded(admin, ns, 'model-v2', 'ActionIgnored')).find((e) => e.reason === 'ActionIgnored')?.message).toBe('abort has no effect while the rollout is Promoted');
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([0, 100]);
  });

  it('abort mid-rollout sends all traffic back to stable', async () => {
    const ns = freshNamespace('cliabort');
    await createModelService(admin, ns, { policies: { manual: MANUAL }, annotations: { 'fledge.dev/policy': 'manual' } });
    await startController(ns);
    await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (s) => s.phase === 'Paused' && s.weight === 10);
    await fledge('abort', 'model-v2', '-n', ns);
    const s = await waitForStatus(admin, ns, 'model-v2', 'RolledBack', (st) => st.phase === 'RolledBack');
    expect(s.weight).toBe(0);
    expect(weightsOf(await readVirtualService(admin, ns))).toEqual([100, 0]);
    expect(await fledge('status', '-n', ns)).toMatch(/model-v2\s+RolledBack/);
  });

  it('status --watch --json prints a line per change', async () => {
    const ns = freshNamespace('cliwatch');
    await createModelService(admin, ns, { policies: { manual: MANUAL }, annotations: { 'fledge.dev/policy': 'manual' } });
    await startController(ns);
    await waitForStatus(admin, ns, 'model-v2', 'Paused at 10%', (st) => st.phase === 'Paused' && st.weight === 10);
    const watcher = startProcess('status-watch', process.execPath, [CLI, 'status', '--watch', '--json', '-n', ns, '--kubeconfig', kube.adminKubeconfigPath], join(logDir, `${ns}-watch.log`));
    procs.push(watcher);
    const lines = () => readFileSync(watcher.logFile, 'utf8').split('\n').filter((l) => l.startsWith('['));
    await waitUntil('the first status line', async () => lines().length >= 1);
    await annotate(admin, ns, 'model-v2', { 'fledge.dev/action': 'promote' });
    await waitUntil('a Promoted line', async () => lines().some((l) => (JSON.parse(l) as { phase: string }[])[0]?.phase === 'Promoted'));
    expect((JSON.parse(lines()[0]!) as { phase: string }[])[0]?.phase).toBe('Paused');
  });

  it('an action on a Deployment fledge does not manage fails with a clear message', async () => {
    const ns = freshNamespace('cliunmanaged');
    await createModelService(admin, ns, { optIn: false });
    await expect(fledge('promote', 'model-v1', '-n', ns)).rejects.toThrow(/not managed by fledge/);
    await expect(fledge('promote', 'nope', '-n', ns)).rejects.toThrow(/Deployment .*\/nope not found/);
  });
});
