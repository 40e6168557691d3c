import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataPlane, metricValue, type ServiceSpec } from '../harness/dataplane.js';
import { mapLimit } from '../harness/http-client.js';

const service = (canaryWeight: number, killed = false): ServiceSpec => ({
  name: 'chat',
  stable: 'v1',
  canary: 'v2',
  canaryWeight,
  killed,
  rolloutHashes: { v1: 'stablehash', v2: 'canaryhash' },
});
const users = Array.from({ length: 1000 }, (_, i) => `user-${i}`);

describe('sticky canary assignment through Envoy (no flags)', () => {
  const dp = new DataPlane();
  beforeAll(async () => {
    await dp.start([service(10)]);
  });
  afterAll(() => dp.stop());

  // As local mode does: extproc's routing file and Envoy's weights move together.
  async function setWeight(weight: number, killed = false) {
    await dp.applyRouting([service(weight, killed)]);
  }

  it('gives the canary its weight in users, never moves a user back, and keeps a user on one version', async () => {
    // Answers Envoy failed open on (extproc past 200 ms on a busy machine) are checked by dp.decided; the rest are extproc's.
    const onCanary = new Map<number, { canary: Set<string>; decided: Set<string> }>();
    for (const weight of [10, 25, 50]) {
      await setWeight(weight);
      const { answers, decided } = await dp.decided(users, (user) => dp.request({ host: 'chat', user }));
      const unexpected = answers.filter((a, i) => a.status !== 200 || (decided[i] && a.headers['x-fledge-reason'] !== 'sticky'));
      expect(unexpected.map((a) => [a.status, a.headers['x-fledge-reason']])).toEqual([]);
      const decidedUsers = users.filter((_, i) => decided[i]);
      expect(decidedUsers.length).toBeGreaterThan(users.length / 2);
      const canaryUsers = new Set(users.filter((_, i) => decided[i] && answers[i]!.servedBy === 'v2'));
      const share = (100 * canaryUsers.size) / decidedUsers.length;
      expect(Math.abs(share - weight)).toBeLessThanOrEqual(3);
      onCanary.set(weight, { canary: canaryUsers, decided: new Set(decidedUsers) });
    }
    for (const [lower, higher] of [
      [10, 25],
      [25, 50],
    ] as const) {
      const up = onCanary.get(higher)!;
      for (const user of onCanary.get(lower)!.canary) if (up.decided.has(user)) expect(up.canary.has(user)).toBe(true);
    }
    const one = await dp.decided(Array.from({ length: 20 }), () => dp.request({ host: 'chat', user: 'user-7' }), 4);
    expect(new Set(one.answers.filter((_, i) => one.decided[i]).map((a) => a.servedBy)).size).toBe(1);
  }, 240_000);

  it('draws at random for requests without a user key, and counts them apart', async () => {
    await setWeight(50);
    const before = metricValue(await dp.metricsText(), 'fledge_extproc_decisions_total', { reason: 'random' });
    const sent = await dp.decided(Array.from({ length: 400 }), () => dp.request({ host: 'chat' }), 4);
    const answers = sent.answers.filter((_, i) => sent.decided[i]);
    expect(answers.length).toBeGreaterThan(200);
    expect(answers.map((a) => a.headers['x-fledge-reason']).filter((r) => r !== 'random')).toEqual([]);
    const canary = answers.filter((a) => a.servedBy === 'v2').length;
    expect(canary / answers.length).toBeGreaterThan(0.3);
    expect(canary / answers.length).toBeLessThan(0.7);
    const counted = metricValue(await dp.metricsText(), 'fledge_extproc_decisions_total', { reason: 'random' }) - before;
    // Every decided request is counted; one whose answer came too late for Envoy is counted too.
    expect(counted).toBeGreaterThanOrEqual(answers.length);
    expect(counted).toBeLessThanOrEqual(400);
  });

  it('sends 100% to stable from the first request after extproc sees the kill switch', async () => {
    await setWeight(50);
    // As local mode renders a killed service: extproc's state and Envoy's weighted route at 0.
    await dp.applyRouting([service(50, true)]);
    // The readiness check for "extproc has seen it"; every request after it must be stable.
    await dp.waitForState((s) => s.services[0]?.killed === true);
    const sent = await dp.decided(users.slice(0, 300), (user) => dp.request({ host: 'chat', user }));
    sent.answers.forEach((a, i) => {
      expect(a.servedBy).toBe('v1');
      if (sent.decided[i]) expect(a.headers['x-fledge-reason']).toBe('killed');
    });
  });

  it('keeps the last good routing state when the routing file is malformed', async () => {
    await setWeight(100);
    dp.writeRouting([{ ...service(100), canaryWeight: 250 }]);
    const log = await dp.waitForLog(/canaryWeight/);
    expect(log).toMatch(/routing\.yaml: services\.chat\.canaryWeight/);
    const answer = await dp.request({ host: 'chat', user: 'user-1' });
    expect(answer.servedBy).toBe('v2');
  });

  it('rejects a zero-byte or services-less routing file like a malformed one, and shows why on /debug/state', async () => {
    await setWeight(100);
    const routing = async () => (await dp.debugState()).routing as { source: string; file: string; lastError: string | null };
    await dp.waitForState((s) => (s.routing as { lastError: string | null }).lastError === null);
    expect(await routing()).toMatchObject({ source: 'file', file: dp.routingFile, lastError: null });
    for (const [text, why] of [
      ['', /the file is empty/],
      ['services: {}\n', /services: no services/],
      ['# nothing here\n', /the file is empty|services: no services/],
    ] as const) {
      writeFileSync(dp.routingFile, text);
      await dp.waitForState((s) => why.test(String((s.routing as { lastError: string | null }).lastError)));
      const after = await dp.decided(users.slice(0, 50), (user) => dp.request({ host: 'chat', user }));
      // The last good state (canary at 100%) still routes every request (Envoy's weights are at 100% too).
      expect(after.answers.map((a, i) => `${a.servedBy}/${after.decided[i] ? a.headers['x-fledge-reason'] : 'sticky'}`).filter((x) => x !== 'v2/sticky')).toEqual([]);
    }
    expect((await dp.debugState()).services.map((s) => s.service)).toEqual(['chat']);

    // A file that says it is meant to be empty is taken: extproc then routes nothing itself.
    writeFileSync(dp.routingFile, 'empty: true\nservices: {}\n');
    await dp.waitForState((s) => s.services.length === 0 && (s.routing as { lastError: string | null }).lastError === null);
    const unrouted = await dp.request({ host: 'chat', user: 'user-1' });
    expect(unrouted.headers['x-fledge-reason']).toBe('unknown-service');
    await setWeight(100);
  });
});

describe('extproc failures never fail a request', () => {
  const dp = new DataPlane();
  beforeAll(async () => {
    await dp.start([service(50)]);
  });
  afterAll(() => dp.stop());

  async function loadWhile(disrupt: () => Promise<void>) {
    const results: { status: number; servedBy?: string; reason?: string }[] = [];
    let running = true;
    const workers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; running; i++) {
        const a = await dp.request({ host: 'chat', user: `load-${w}-${i % 50}` });
        results.push({ status: a.status, servedBy: a.servedBy, reason: a.headers['x-fledge-reason'] as string | undefined });
      }
    });
    // Readiness, not a sleep: disrupt only once requests are flowing.
    while (results.length < 60) await new Promise((r) => setTimeout(r, 20));
    await disrupt();
    running = false;
    await Promise.all(workers);
    return results;
  }

  // Fail-open is the weighted route at the canary's weight (50% here), not "stable": see fail-open.test.ts for the split.
  const undecided = (a: { status: number; servedBy?: string; headers: Record<string, unknown> }) => a.status === 200 && (a.servedBy === 'v1' || a.servedBy === 'v2') && a.headers['x-fledge-reason'] === undefined;

  it('serves every request by the weighted route while extproc is killed', async () => {
    const results = await loadWhile(async () => {
      await dp.extproc.kill();
      const during = await Promise.all(Array.from({ length: 50 }, (_, i) => dp.request({ host: 'chat', user: `after-kill-${i}` })));
      expect(during.filter((a) => !undecided(a)).map((a) => [a.status, a.servedBy])).toEqual([]);
    });
    // Requests in flight when it died had already been routed; none of them failed.
    expect(results.length).toBeGreaterThan(50);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    await dp.restartExtproc();
    // Envoy reconnects to the new extproc; readiness = the first answer extproc decides.
    let back = await dp.request({ host: 'chat', user: 'after-restart' });
    for (const deadline = Date.now() + 10_000; back.headers['x-fledge-reason'] === undefined && Date.now() < deadline; ) back = await dp.request({ host: 'chat', user: 'after-restart' });
    expect(back.headers['x-fledge-reason']).toBe('sticky');
  });

  it('serves every request by the weighted route while extproc hangs', async () => {
    const results = await loadWhile(async () => {
      dp.extproc.child.kill('SIGSTOP');
      try {
        const during = await Promise.all(Array.from({ length: 20 }, (_, i) => dp.request({ host: 'chat', user: `while-hung-${i}` })));
        expect(during.filter((a) => !undecided(a)).map((a) => [a.status, a.servedBy])).toEqual([]);
      } finally {
        dp.extproc.child.kill('SIGCONT');
      }
    });
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
  });
});

describe('/metrics counts what each model served', () => {
  const dp = new DataPlane();
  beforeAll(async () => {
    await dp.start([service(30)]);
  });
  afterAll(() => dp.stop());

  it('matches the simulated models request for request, with rollout hashes', async () => {
    const { answers, decided } = await dp.decided(Array.from({ length: 600 }, (_, i) => `m-${i}`), (user) => dp.request({ host: 'chat', user }), 2);
    const metrics = await dp.metricsText();
    const stableServed = dp.sim('chat', 'v1').stats().requests;
    const canaryServed = dp.sim('chat', 'v2').stats().requests;
    expect(stableServed + canaryServed).toBe(600);
    expect(canaryServed).toBeGreaterThan(0);
    // extproc counts what it saw answered: every decided answer, never more than a model served.
    // (Equal on an idle machine; an answer Envoy stopped waiting for is served but may go uncounted.)
    const decidedBy = (v: string) => answers.filter((a, i) => decided[i] && a.servedBy === v).length;
    const v1 = metricValue(metrics, 'inference_requests_total', { service: 'chat', version: 'v1', rollout_hash: 'stablehash' });
    const v2 = metricValue(metrics, 'inference_requests_total', { service: 'chat', version: 'v2', rollout_hash: 'canaryhash' });
    expect(v1).toBeGreaterThanOrEqual(decidedBy('v1'));
    expect(v1).toBeLessThanOrEqual(stableServed);
    expect(v2).toBeGreaterThanOrEqual(decidedBy('v2'));
    expect(v2).toBeLessThanOrEqual(canaryServed);
    expect(metricValue(metrics, 'inference_latency_seconds_count', { version: 'v2' })).toBe(v2);
    expect(metricValue(metrics, 'inference_errors_total', {})).toBe(0);
    const phases = metricValue(metrics, 'fledge_extproc_phase_duration_seconds_count', { phase: 'request_headers' });
    expect(phases).toBeGreaterThanOrEqual(decided.filter((d) => d).length);
    expect(phases).toBeLessThanOrEqual(600);
  });

  it('counts 5xx answers as errors of the version that gave them', async () => {
    dp.sim('chat', 'v2').patchKnobs({ errorRate: 1, errorStatus: 503 });
    const before = metricValue(await dp.metricsText(), 'inference_errors_total', { version: 'v2' });
    const { answers, decided } = await dp.decided(Array.from({ length: 200 }, (_, i) => `e-${i}`), (user) => dp.request({ host: 'chat', user }), 4);
    const failed = answers.filter((a) => a.status === 503).length;
    expect(failed).toBeGreaterThan(0);
    // Every 503 extproc saw answered is counted, none that did not happen (equal on an idle machine).
    const counted = metricValue(await dp.metricsText(), 'inference_errors_total', { version: 'v2' }) - before;
    expect(counted).toBeGreaterThanOrEqual(answers.filter((a, i) => decided[i] && a.status === 503).length);
    expect(counted).toBeLessThanOrEqual(failed);
  });
});
