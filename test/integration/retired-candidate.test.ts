// A candidate that must not serve gets no request (issue 9): once retired — what RolledBack
// and abort do (the engine emits retire-candidate with weight 0, see rollout-machine tests) —
// no flag, sticky bucket or header reaches it, with the seed's flag file verbatim, whose
// targeting sends internal users and half the beta users to the candidate. Local mode
// (the local stack and its traffic router) and cluster mode (the Istio router writing the
// VirtualService as the controller's ServiceAccount, extproc reading it as its own).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { startControllerApp, type ControllerApp } from '../../controller/kube/controller-app.js';
import { LocalTrafficRouter } from '../../controller/local/local-router.js';
import { DEFAULT_GUARDRAIL } from '../../controller/policy/default-policy.js';
import { IstioVirtualServiceRouter, VirtualServiceUpdater } from '../../controller/traffic/istio/istio-router.js';
import { stackConfigSchema } from '../../local/stack-config.js';
import { LocalStack } from '../../local/stack.js';
import { CLI, DataPlane } from '../harness/dataplane.js';
import { chat, mapLimit, type ModelResponse } from '../harness/http-client.js';
import { followVirtualService } from '../harness/istio-standin.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { annotate, createModelService, weightedVirtualService, VS_API, readVirtualService, waitForStatus } from '../harness/rollout-fixture.js';
import { freeStackPorts } from '../harness/stack-ports.js';
import { ensureNamespace } from '../harness/virtualservices.js';
import { CustomObjectsApi } from '@kubernetes/client-node';

const { maxAge: _maxAge, checkInterval: _check, ...defaultLimits } = DEFAULT_GUARDRAIL;
const GUARDRAIL = { ...defaultLimits, maxAgeSeconds: 60 };
const run = promisify(execFile);
const seedFlagsFile = resolve(import.meta.dirname, '../fixtures/seed/flags.json');
/** 2,000 users: a tenth internal, a fifth beta, the rest free. */
const population = Array.from({ length: 2000 }, (_, i) => ({ user: `user-${i}`, segment: i % 10 === 0 ? 'internal' : i % 5 === 1 ? 'beta' : 'free' }));

function bySegment(answers: ModelResponse[], version: string): Record<string, number> {
  const out: Record<string, number> = {};
  answers.forEach((a, i) => {
    if (a.servedBy === version) out[population[i]!.segment] = (out[population[i]!.segment] ?? 0) + 1;
  });
  return out;
}

describe('local mode: a retired candidate gets no request (the local stack, seed flags)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-retired-local-'));
  let stack: LocalStack;
  let router: LocalTrafficRouter;

  beforeAll(async () => {
    const ports = await freeStackPorts(2);
    const fast = { knobs: { latency: { kind: 'fixed', ms: 1 } } };
    const config = stackConfigSchema.parse({ ports, services: { chat: { stable: 'v1.2', versions: { 'v1.2': fast, 'v1.3': fast } } } });
    stack = new LocalStack(config, { stateDir: join(dir, 'state'), flagsFile: seedFlagsFile });
    await stack.start(() => undefined);
    router = new LocalTrafficRouter(
      { trafficFile: stack.trafficFile, routingFile: stack.routingFile, envoyRoutes: stack.routes, extprocAdminUrl: `http://127.0.0.1:${ports.extprocAdmin}` },
      'chat',
      'v1.3',
    );
  });
  afterAll(async () => {
    await stack?.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });

  const send = () => mapLimit(population, 8, (p) => chat(stack.config.ports.envoy, { host: 'chat', user: p.user, segment: p.segment }));

  it('at weight 20 the flag and the weight reach it; once retired, nobody: not internal, not beta, not by header', async () => {
    await router.setWeight(20);
    const rolling = await send();
    expect(rolling.filter((a) => a.status !== 200).map((a) => a.status)).toEqual([]);
    expect(bySegment(rolling, 'v1.3').internal).toBeGreaterThan(150);

    await router.retireCandidate();
    const retired = await send();
    expect(retired.filter((a) => a.status !== 200).map((a) => a.status)).toEqual([]);
    expect(bySegment(retired, 'v1.3')).toEqual({});
    const spoofed = await mapLimit(population.slice(0, 200), 8, (p) => chat(stack.config.ports.envoy, { host: 'chat', user: p.user, segment: p.segment, headers: { 'x-fledge-version': 'v1.3' } }));
    expect(spoofed.filter((a) => a.status !== 200 || a.servedBy !== 'v1.2')).toEqual([]);
    // Envoy has no route left to the candidate but the weighted one, at 0.
    expect(await router.verifyWeight(0)).toBe(true);
  }, 300_000);
});

describe('cluster mode: a retired candidate gets no request (kube-apiserver, VirtualService source, seed flags)', () => {
  let kube: KubeHarness;
  let dp: DataPlane;
  let follower: ReturnType<typeof followVirtualService>;
  let router: IstioVirtualServiceRouter;
  const namespace = 'retired';

  beforeAll(async () => {
    kube = await startKube();
    await kube.apply(readFileSync(resolve(import.meta.dirname, '../../manifests/rbac.yaml'), 'utf8'));
    await ensureNamespace(kube, namespace);
    await kube.adminKubeConfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ ...VS_API, namespace, body: weightedVirtualService('model', namespace) });
    const controllerKc = await kube.kubeconfigFor('fledge-controller', 'fledge-system');
    // With the default policy's guardrail, which the router annotates for extproc while the canary may serve.
    router = new IstioVirtualServiceRouter(new VirtualServiceUpdater(controllerKc), { namespace, name: 'model' }, { stable: 'v1', canary: 'v2' }, { stableHash: 'stablehash', canaryHash: 'canaryhash' }, undefined, GUARDRAIL);
    const extprocKubeconfig = await kube.writeKubeconfig(await kube.kubeconfigFor('fledge-extproc', 'fledge-system'), 'extproc');
    const seedFlags = JSON.parse(readFileSync(seedFlagsFile, 'utf8')) as { flags: Record<string, { variants: Record<string, string>; defaultVariant: string; targeting: unknown }> };
    // The seed's flag verbatim, its versions named as this service's subsets (v1.2 → v1, v1.3 → v2).
    const flags = JSON.stringify(seedFlags).replaceAll('v1.2', 'v1').replaceAll('v1.3', 'v2');
    dp = new DataPlane({ virtualService: { kubeconfig: extprocKubeconfig, namespace } });
    await dp.start([{ name: 'model', stable: 'v1', canary: 'v2' }], flags);
    follower = followVirtualService(dp, kube.adminKubeConfig, namespace, 'model', 'model');
  });
  afterAll(async () => {
    await follower?.stop();
    await dp?.stop();
    await kube?.stop();
  });

  const send = () => mapLimit(population, 8, (p) => dp.request({ host: 'model', user: p.user, segment: p.segment }));

  it('at weight 20 the flag and the weight reach it; once retired, nobody: not internal, not beta, not by header', async () => {
    await router.setWeight(20);
    await follower.synced();
    await dp.waitForState((s) => s.services.some((x) => x.service === 'model' && x.canary === 'v2' && x.canaryWeight === 20 && x.routeToken !== undefined));
    // extproc's VirtualService source reads the guardrail limits the controller annotated.
    expect((await dp.debugState()).services.find((x) => x.service === 'model')?.guardrail).toEqual(GUARDRAIL);
    const rolling = await send();
    expect(rolling.filter((a) => a.status !== 200).map((a) => a.status)).toEqual([]);
    expect(bySegment(rolling, 'v2').internal).toBeGreaterThan(150);

    await router.retireCandidate();
    await follower.synced();
    await dp.waitForState((s) => s.services.some((x) => x.service === 'model' && x.canary === undefined));
    const vs = await readVirtualService(kube.adminKubeConfig, namespace);
    expect(vs.spec.http?.map((h) => h.name)).toEqual(['fledge-v1', 'weighted']);
    expect(vs.metadata?.annotations?.['fledge.dev/canary-subset']).toBeUndefined();
    expect(vs.metadata?.annotations?.['fledge.dev/guardrail']).toBeUndefined();

    const before = dp.sim('model', 'v2').stats().requests;
    const retired = await send();
    const spoofed = await mapLimit(population.slice(0, 200), 8, (p) => dp.request({ host: 'model', user: p.user, segment: p.segment, headers: { 'x-fledge-version': 'v2' } }));
    expect([...retired, ...spoofed].filter((a) => a.status !== 200).map((a) => a.status)).toEqual([]);
    // Counted at the candidate's model itself.
    expect(dp.sim('model', 'v2').stats().requests - before).toBe(0);

    // The next set-weight (a retry) makes it the canary again.
    await router.setWeight(5);
    await dp.waitForState((s) => s.services.some((x) => x.service === 'model' && x.canary === 'v2' && x.canaryWeight === 5));
    expect((await readVirtualService(kube.adminKubeConfig, namespace)).spec.http?.map((h) => h.name)).toEqual(['fledge-v1', 'fledge-v2', 'weighted']);
  }, 300_000);
});

describe('cluster mode: `fledge abort` through the controller leaves no one on the candidate (kube-apiserver, controller, VirtualService source, seed flags)', () => {
  let kube: KubeHarness;
  let dp: DataPlane;
  let follower: ReturnType<typeof followVirtualService>;
  let controller: ControllerApp;
  const namespace = 'aborted';
  /** A step that waits for a person: the rollout sits at 20% until the abort. */
  const MANUAL = 'kind: Rollout\nmetadata: {name: manual}\nspec:\n  strategy:\n    canary:\n      steps:\n        - setWeight: 20\n        - pause: {}\n        - setWeight: 100\n';

  beforeAll(async () => {
    kube = await startKube();
    await kube.apply(readFileSync(resolve(import.meta.dirname, '../../manifests/rbac.yaml'), 'utf8'));
    await createModelService(kube.adminKubeConfig, namespace, { policies: { manual: MANUAL }, optIn: false });
    const extprocKubeconfig = await kube.writeKubeconfig(await kube.kubeconfigFor('fledge-extproc', 'fledge-system'), 'extproc-aborted');
    const seedFlags = readFileSync(seedFlagsFile, 'utf8').replaceAll('v1.2', 'v1').replaceAll('v1.3', 'v2');
    dp = new DataPlane({ virtualService: { kubeconfig: extprocKubeconfig, namespace } });
    await dp.start([{ name: 'model', stable: 'v1', canary: 'v2' }], seedFlags);
    follower = followVirtualService(dp, kube.adminKubeConfig, namespace, 'model', 'model');
    controller = await startControllerApp({
      kubeConfig: await kube.kubeconfigFor('fledge-controller', 'fledge-system'),
      namespace,
      // No analysis in this policy; the silent fail-open check has its own test.
      prometheusUrl: 'http://127.0.0.1:1',
      decisionCheck: false,
      timeScale: 1,
      leaseNamespace: 'fledge-system',
      leaseName: 'lease-aborted',
      identity: 'aborted',
      adminHost: '127.0.0.1',
      adminPort: 0,
      logger: createLogger('controller-aborted', 'warn'),
    });
    await annotate(kube.adminKubeConfig, namespace, 'model-v2', { 'fledge.dev/virtual-service': 'model', 'fledge.dev/policy': 'manual' });
  });
  afterAll(async () => {
    await controller?.stop();
    await follower?.stop();
    await dp?.stop();
    await kube?.stop();
  });

  const send = () => mapLimit(population, 8, (p) => dp.request({ host: 'model', user: p.user, segment: p.segment }));

  it('paused at 20%: internal and beta users and a fifth of the rest reach it; after `fledge abort`, nobody', async () => {
    await waitForStatus(kube.adminKubeConfig, namespace, 'model-v2', 'Paused at 20%', (s) => s.phase === 'Paused' && s.weight === 20);
    await follower.synced();
    await dp.waitForState((s) => s.services.some((x) => x.service === 'model' && x.canary === 'v2' && x.canaryWeight === 20));
    const rolling = await send();
    expect(rolling.filter((a) => a.status !== 200).map((a) => a.status)).toEqual([]);
    const onCandidate = bySegment(rolling, 'v2');
    expect(onCandidate.internal).toBeGreaterThan(150);
    expect(onCandidate.beta).toBeGreaterThan(100);
    expect(onCandidate.free).toBeGreaterThan(150);

    await run(process.execPath, [CLI, 'abort', 'model-v2', '-n', namespace, '--kubeconfig', kube.adminKubeconfigPath], { env: { ...process.env, FLEDGE_LOG_LEVEL: 'warn' } });
    const s = await waitForStatus(kube.adminKubeConfig, namespace, 'model-v2', 'RolledBack', (st) => st.phase === 'RolledBack');
    expect(s.message).toContain('aborted by user');
    await follower.synced();
    await dp.waitForState((st) => st.services.some((x) => x.service === 'model' && x.canary === undefined));

    const before = dp.sim('model', 'v2').stats().requests;
    const aborted = await send();
    expect(aborted.filter((a) => a.status !== 200).map((a) => a.status)).toEqual([]);
    expect(bySegment(aborted, 'v2')).toEqual({});
    // Counted at the candidate's model itself.
    expect(dp.sim('model', 'v2').stats().requests - before).toBe(0);
  }, 300_000);
});
