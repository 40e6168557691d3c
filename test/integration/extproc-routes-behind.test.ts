// For a moment after every routing change, extproc's state and the proxy's routes disagree:
// extproc reads its file (or the VirtualService) directly, the proxy gets routes by RDS (by
// istiod's push in a cluster). A request extproc sends to a version whose route the proxy does
// not have yet falls through to the weighted route and is answered by whichever version that
// route picks. Here the real Envoy runs local mode's routes without the candidate's route while
// extproc already routes users to it: the answers must not be reported or counted as the
// candidate's. Once Envoy has the route, the candidate answers and is counted as before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataPlane, metricValue, type ServiceSpec } from '../harness/dataplane.js';

const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
const stableOnly: ServiceSpec = { name: 'chat', stable: 'v1', extraVersions: ['v2'], rolloutHashes: { v1: 'stablehash', v2: 'canaryhash' } };
const allOnCanary: ServiceSpec = { ...stableOnly, canary: 'v2', canaryWeight: 100 };

describe("extproc's state ahead of the proxy's routes (real Envoy)", () => {
  const dp = new DataPlane();
  beforeAll(async () => {
    await dp.start([stableOnly]);
  }, 60_000);
  afterAll(() => dp.stop());

  const counted = async (name: string, version: string) => metricValue(await dp.metricsText(), name, { service: 'chat', version });

  it('an answer that did not come by the chosen version\'s route is not reported or counted as that version', async () => {
    // extproc routes everyone to v2; Envoy still has only v1's route and the weighted route at 0%.
    dp.writeRouting([allOnCanary]);
    await dp.waitForState((s) => s.services.some((x) => x.service === 'chat' && x.canary === 'v2' && x.canaryWeight === 100));
    const { answers, decided } = await dp.decided(users, (user) => dp.request({ host: 'chat', user }));
    const mine = answers.filter((_, i) => decided[i]);
    expect(mine.length).toBeGreaterThan(users.length / 2);
    expect(answers.map((a) => a.status).filter((s) => s !== 200)).toEqual([]);
    // The weighted route served them all, so v1 answered; extproc says it does not know who served.
    expect(new Set(mine.map((a) => a.servedBy))).toEqual(new Set(['v1']));
    expect(mine.map((a) => a.headers['x-fledge-reason']).filter((r) => r !== 'routes-behind')).toEqual([]);
    expect(mine.filter((a) => a.headers['x-fledge-version'] !== undefined)).toEqual([]);
    expect(answers.filter((a) => a.headers['x-fledge-served-by'] !== undefined)).toEqual([]);
    expect(await counted('inference_requests_total', 'v2')).toBe(0);
    expect(await counted('fledge_extproc_route_misses_total', 'v2')).toBe(mine.length);
  }, 120_000);

  it('once the proxy has the route, the chosen version answers and is counted under its name', async () => {
    await dp.applyEnvoyRoutes([allOnCanary]);
    const missesBefore = await counted('fledge_extproc_route_misses_total', 'v2');
    const { answers, decided } = await dp.decided(users, (user) => dp.request({ host: 'chat', user }));
    const mine = answers.filter((_, i) => decided[i]);
    expect(mine.length).toBeGreaterThan(users.length / 2);
    expect(new Set(mine.map((a) => a.servedBy))).toEqual(new Set(['v2']));
    expect(new Set(mine.map((a) => a.headers['x-fledge-version']))).toEqual(new Set(['v2']));
    expect(new Set(mine.map((a) => a.headers['x-fledge-reason']))).toEqual(new Set(['sticky']));
    expect(answers.filter((a) => a.headers['x-fledge-served-by'] !== undefined)).toEqual([]);
    expect(await counted('inference_requests_total', 'v2')).toBe(mine.length);
    expect(await counted('fledge_extproc_route_misses_total', 'v2')).toBe(missesBefore);
  }, 120_000);

  it("Envoy's own reply on the version's route (its model down) is still that version's: counted as its error, not a route miss", async () => {
    await dp.sim('chat', 'v2').close();
    const missesBefore = await counted('fledge_extproc_route_misses_total', 'v2');
    const errorsBefore = await counted('inference_errors_total', 'v2');
    const { answers, decided } = await dp.decided(users.slice(0, 50), (user) => dp.request({ host: 'chat', user }));
    const mine = answers.filter((_, i) => decided[i]);
    expect(mine.length).toBeGreaterThan(25);
    expect(new Set(mine.map((a) => `${a.status} ${a.headers['x-fledge-version']} ${a.headers['x-fledge-reason']}`))).toEqual(new Set(['503 v2 sticky']));
    expect((await counted('inference_errors_total', 'v2')) - errorsBefore).toBe(mine.length);
    expect(await counted('fledge_extproc_route_misses_total', 'v2')).toBe(missesBefore);
  }, 120_000);
});
