/**
 * make bench-controller: the controller against a real kube-apiserver and a real Prometheus.
 *
 * - reconcile_p99_ms: ≥100 rollouts started at once (the seed policy at time scale 600, so
 *   each runs 4 steps of pauses and 3 analyses in ~4s), p99 of every reconcile's duration as
 *   the controller process logs it.
 * - rollback_actuation_ms: for a few canaries that breach the error-rate threshold, the time
 *   from the failing measurement (its finishedAt in the status) to the VirtualService update
 *   arriving on a watch; the worst of them.
 * - rss_mb: the controller process's resident memory after the load.
 * Writes bench/results/controller.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, Watch, type KubeConfig } from '@kubernetes/client-node';
import { startProcess, waitForHttp } from '../local/child-process.js';
import { freePort } from '../local/ports.js';
import { parseStatus } from '../controller/kube/rollout-status.js';
import { startKube } from '../test/harness/kube.js';
import { startPrometheus } from '../test/harness/prometheus.js';
import { startInferenceMetrics } from '../test/harness/inference-metrics.js';
import { makeDeploymentAvailable } from '../test/harness/pods.js';
import { hashOnceCreated } from '../test/harness/rollout-fixture.js';

const ROLLOUTS = Number(process.env.BENCH_ROLLOUTS ?? 100);
const FAILING = Number(process.env.BENCH_FAILING ?? 5);
const NS = 'bench';
const root = resolve(import.meta.dirname, '..', '..');
const VS = { group: 'networking.istio.io', version: 'v1', plural: 'virtualservices' } as const;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-controller-bench-'));
  const metrics = await startInferenceMetrics();
  const [kube, prometheus] = await Promise.all([startKube(), startPrometheus([metrics.target], 1000)]);
  try {
    const admin = kube.adminKubeConfig;
    await kube.apply(readFileSync(join(root, 'manifests', 'rbac.yaml'), 'utf8'));
    const saKubeconfig = await kube.writeKubeconfig(await kube.kubeconfigFor('fledge-controller', 'fledge-system'), 'controller');
    const policy = ['rollout.yaml', 'analysis-template.yaml'].map((f) => readFileSync(join(root, 'test', 'fixtures', 'seed', f), 'utf8')).join('\n---\n');
    await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
    await admin.makeApiClient(CoreV1Api).createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'fledge-policies' }, data: { seed: policy } } });

    const services = Array.from({ length: ROLLOUTS + FAILING }, (_, i) => ({ name: `model-${i}`, failing: i >= ROLLOUTS }));
    for (const s of services) {
      const hashes = await createService(admin, s.name);
      metrics.set(hashes.stable, { version: 'v1' });
      metrics.set(hashes.canary, { version: 'v2', ...(s.failing ? { errorRatio: 0.05 } : {}) });
    }
    await prometheus.waitForScrapes(2);

    const adminPort = await freePort();
    const logFile = join(dir, 'controller.log');
    const controller = startProcess('controller', process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'controller', '--kubeconfig', saKubeconfig, '-n', NS, '--prometheus-url', prometheus.url, '--time-scale', '600', '--lease-name', 'bench', '--admin-port', String(adminPort), '--concurrency', process.env.BENCH_CONCURRENCY ?? '4'], logFile, { ...process.env, FLEDGE_LOG_LEVEL: 'debug' });
    await waitForHttp(controller, `http://127.0.0.1:${adminPort}/healthz`);

    // The load: every healthy rollout opted in at once.
    const loadStart = Date.now();
    await Promise.all(services.filter((s) => !s.failing).map((s) => optIn(admin, s.name)));
    await waitForPhases(admin, services.filter((s) => !s.failing).map((s) => s.name), 'Promoted', 180_000);
    const loadSeconds = (Date.now() - loadStart) / 1000;

    // Rollback actuation, one failing canary at a time on an otherwise idle controller.
    const actuations: number[] = [];
    for (const s of services.filter((x) => x.failing)) actuations.push(await measureActuation(admin, s.name));

    const durations = readFileSync(logFile, 'utf8')
      .split('\n')
      .flatMap((line) => {
        if (!line.startsWith('{')) return [];
        const entry = JSON.parse(line) as { msg?: string; durationMs?: number };
        return entry.msg === 'reconciled' && typeof entry.durationMs === 'number' ? [entry.durationMs] : [];
      })
      .sort((a, b) => a - b);
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${controller.child.pid}/status`, 'utf8'))?.[1] ?? NaN);
    const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${controller.child.pid}/status`, 'utf8'))?.[1] ?? NaN);
    await controller.stop();
    if (process.env.BENCH_KEEP_LOG) process.stdout.write(`controller log: ${logFile}\n`);

    const result = {
      rollback_actuation_ms: Math.round(Math.max(...actuations) * 10) / 10,
      reconcile_p99_ms: Math.round(quantile(durations, 0.99) * 10) / 10,
      concurrent_rollouts: ROLLOUTS,
      rss_mb: Math.round((rssKb / 1024) * 10) / 10,
    };
    const out = join(root, 'bench', 'results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'controller.json'), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.stdout.write(
      `detail: ${durations.length} reconciles, p50 ${quantile(durations, 0.5).toFixed(1)} ms, max ${durations.at(-1)?.toFixed(1)} ms; ${ROLLOUTS} rollouts promoted in ${loadSeconds.toFixed(1)} s; ` +
        `actuation ms ${actuations.map((a) => a.toFixed(1)).join(', ')}; peak RSS ${(hwmKb / 1024).toFixed(1)} MB\n`,
    );
  } finally {
    await Promise.all([kube.stop(), prometheus.stop(), metrics.close()]);
  }
}

async function createService(kc: KubeConfig, name: string): Promise<{ stable: string; canary: string }> {
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const subset = (v: string) => ({ name: v, labels: { app: name, version: v } });
  await custom.createNamespacedCustomObject({ group: 'networking.istio.io', version: 'v1', plural: 'destinationrules', namespace: NS, body: { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name }, spec: { host: name, subsets: [subset('v1'), subset('v2')] } } });
  await custom.createNamespacedCustomObject({
    ...VS,
    namespace: NS,
    body: { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name }, spec: { hosts: [name], http: [{ name: 'weighted', route: [{ destination: { host: name, subset: 'v1' }, weight: 100 }, { destination: { host: name, subset: 'v2' }, weight: 0 }] }] } },
  });
  const hashes = { stable: '', canary: '' };
  for (const version of ['v1', 'v2'] as const) {
    const labels = { app: name, version };
    const template = { metadata: { labels }, spec: { containers: [{ name: 'model', image: 'example.invalid/model' }] } };
    await apps.createNamespacedDeployment({ namespace: NS, body: { metadata: { name: `${name}-${version}`, labels }, spec: { selector: { matchLabels: labels }, template } } });
  }
  // The real Deployment and ReplicaSet controllers make the ReplicaSets and Pods; the Pods are reported Ready.
  for (const version of ['v1', 'v2'] as const) {
    hashes[version === 'v1' ? 'stable' : 'canary'] = await hashOnceCreated(kc, NS, `${name}-${version}`);
    await makeDeploymentAvailable(kc, NS, `${name}-${version}`);
  }
  return hashes;
}

async function optIn(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(AppsV1Api).patchNamespacedDeployment({ namespace: NS, name: `${name}-v2`, body: { metadata: { annotations: { 'fledge.dev/virtual-service': name, 'fledge.dev/policy': 'seed' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
}

async function waitForPhases(kc: KubeConfig, names: string[], phase: string, timeoutMs: number): Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const items = (await apps.listNamespacedDeployment({ namespace: NS, resourceVersion: '0' })).items;
    const phases = new Map(items.map((d) => [d.metadata!.name!, d.metadata?.annotations?.['fledge.dev/status'] ? parseStatus(d.metadata.annotations['fledge.dev/status']).phase : 'none']));
    const behind = names.filter((n) => phases.get(`${n}-v2`) !== phase);
    if (!behind.length) return;
    if (Date.now() > deadline) throw new Error(`${behind.length} rollouts not ${phase} in time, e.g. ${behind.slice(0, 3).map((n) => `${n}: ${phases.get(`${n}-v2`)}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Opts a failing canary in and times failing measurement → VirtualService weight 0. */
async function measureActuation(kc: KubeConfig, name: string): Promise<number> {
  let rolledBackAt: number | undefined;
  let seenCanaryWeight = false;
  const watch = await new Watch(kc).watch(`/apis/${VS.group}/${VS.version}/namespaces/${NS}/${VS.plural}`, { fieldSelector: `metadata.name=${name}` }, (_type: string, vs: { spec: { http: { route: { destination: { subset: string }; weight: number }[] }[] } }) => {
    const canary = vs.spec.http[0]?.route.find((r) => r.destination.subset === 'v2')?.weight ?? 0;
    if (canary > 0) seenCanaryWeight = true;
    else if (seenCanaryWeight && rolledBackAt === undefined) rolledBackAt = Date.now();
  }, () => undefined);
  try {
    await optIn(kc, name);
    await waitForPhases(kc, [name], 'RolledBack', 60_000);
    const deadline = Date.now() + 10_000;
    while (rolledBackAt === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const d = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ namespace: NS, name: `${name}-v2` });
    const status = parseStatus(d.metadata!.annotations!['fledge.dev/status']!);
    const run = status.analysis ?? status.lastAnalysis;
    const failing = run?.metrics.flatMap((m) => m.measurements.filter((x) => x.phase === 'Failed')).sort((a, b) => b.finishedAt - a.finishedAt)[0];
    if (!failing || rolledBackAt === undefined) throw new Error(`no failing measurement or no rollback seen for ${name}: ${status.message}`);
    return rolledBackAt - failing.finishedAt;
  } finally {
    watch.abort();
  }
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

main().catch((err: unknown) => {
  process.stderr.write(`controller bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
