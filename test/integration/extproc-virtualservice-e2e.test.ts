// End to end in cluster mode: `fledge extproc --routing-source virtualservice` as a child
// process, authenticated as the fledge-extproc ServiceAccount against a real
// kube-apiserver, in front of a real Envoy. Patching the VirtualService moves users.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRouteToken } from '../../common/route-token.js';
import { DataPlane } from '../harness/dataplane.js';
import { mapLimit } from '../harness/http-client.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { applyVirtualService, ensureNamespace } from '../harness/virtualservices.js';

const users = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
const hashes = '{"v1":"stablehash","v2":"canaryhash"}';
const routeToken = newRouteToken();

describe('sticky assignment follows the VirtualService (real kube-apiserver, extproc, Envoy)', () => {
  let kube: KubeHarness;
  let dp: DataPlane;

  async function setVirtualService(canaryWeight: number, killed = false) {
    const annotations: Record<string, string> = { 'fledge.dev/canary-subset': 'v2', 'fledge.dev/rollout-hashes': hashes };
    if (killed) annotations['fledge.dev/killed'] = 'true';
    await applyVirtualService(kube, { name: 'chat', namespace: 'models', canaryWeight, annotations, routeToken });
    // Envoy stands in for Istio's translation of the VirtualService: the same weights and token.
    await dp.applyEnvoyRoutes([{ name: 'chat', stable: 'v1', canary: 'v2', canaryWeight, killed, routeToken }]);
    // Readiness check: extproc's own view of the routing state.
    await dp.waitForState((s) => s.services.some((x) => x.service === 'chat' && x.canaryWeight === canaryWeight && x.killed === killed && x.routeToken === routeToken));
  }

  async function route(): Promise<{ servedBy: (string | undefined)[]; reasons: Set<unknown> }> {
    const { answers, decided } = await dp.decided(users, (user) => dp.request({ host: 'chat', user }));
    expect(answers.filter((a) => a.status !== 200).map((a) => a.status)).toEqual([]);
    expect(decided.filter((d) => d).length).toBeGreaterThan(users.length / 2);
    // Undecided answers (Envoy failed open past 200 ms, accounted for by dp.decided) are left out: undefined.
    return { servedBy: answers.map((a, i) => (decided[i] ? a.servedBy : undefined)), reasons: new Set(answers.filter((_, i) => decided[i]).map((a) => a.headers['x-fledge-reason'])) };
  }

  beforeAll(async () => {
    kube = await startKube();
    await kube.apply(await readFile(new URL('../../manifests/rbac.yaml', import.meta.url), 'utf8'));
    await ensureNamespace(kube, 'models');
    await applyVirtualService(kube, { name: 'chat', namespace: 'models', canaryWeight: 0, annotations: { 'fledge.dev/canary-subset': 'v2', 'fledge.dev/rollout-hashes': hashes }, routeToken });
    const kubeconfig = await kube.writeKubeconfig(await kube.kubeconfigFor('fledge-extproc', 'fledge-system'), 'fledge-extproc');
    dp = new DataPlane({ virtualService: { kubeconfig } });
    await dp.start([{ name: 'chat', stable: 'v1', canary: 'v2', routeToken }]);
  });
  afterAll(async () => {
    await dp?.stop();
    await kube?.stop();
  });

  it('routes by the VirtualService weight 0 → 50 → 100, each user keeping one version at a weight', async () => {
    await setVirtualService(0);
    const at0 = await route();
    expect(at0.servedBy.filter((v) => v !== 'v1' && v !== undefined)).toEqual([]);

    await setVirtualService(50);
    const at50 = await route();
    expect([...at50.reasons]).toEqual(['sticky']);
    const decided50 = at50.servedBy.filter((v) => v !== undefined);
    const canaryShare = (100 * decided50.filter((v) => v === 'v2').length) / decided50.length;
    expect(Math.abs(canaryShare - 50)).toBeLessThanOrEqual(3);
    // Sticky: the same users again get the same versions.
    const again = (await route()).servedBy;
    const both = users.map((_, i) => i).filter((i) => again[i] !== undefined && at50.servedBy[i] !== undefined);
    expect(both.map((i) => again[i])).toEqual(both.map((i) => at50.servedBy[i]));

    await setVirtualService(100);
    const at100 = await route();
    expect(at100.servedBy.filter((v) => v !== 'v2' && v !== undefined)).toEqual([]);

    const metrics = await dp.metricsText();
    expect(metrics).toMatch(/inference_requests_total\{[^}]*version="v2"[^}]*rollout_hash="canaryhash"/);
  });

  it('sends everyone to stable once the kill annotation is set', async () => {
    await setVirtualService(100, true);
    const killed = await route();
    expect(killed.servedBy.filter((v) => v !== 'v1' && v !== undefined)).toEqual([]);
    expect([...killed.reasons]).toEqual(['killed']);
  });

  it('reports a VirtualService it cannot use on /debug/state and keeps serving the others', async () => {
    await applyVirtualService(kube, { name: 'broken', namespace: 'models', canaryWeight: 10, annotations: { 'fledge.dev/canary-subset': 'v7' } });
    await dp.waitForState((s) => JSON.stringify((s as unknown as { routing: { skipped: object } }).routing.skipped).includes('models/broken'));
    const state = (await dp.debugState()) as unknown as { routing: { source: string; skipped: Record<string, string> } };
    expect(state.routing.source).toBe('virtualservice');
    expect(state.routing.skipped['models/broken']).toMatch(/canary-subset "v7" is not a subset/);
    expect(dp.extproc.logTail(50)).toMatch(/VirtualService models\/broken skipped/);
    const answer = await dp.request({ host: 'chat', user: 'user-1' });
    expect(answer.status).toBe(200);
    expect(answer.headers['x-fledge-reason']).toBe('killed');
  });
});
