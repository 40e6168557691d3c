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

  async function setWeight(weight: number, killed = false) {
    dp.writeRouting([service(weight, killed)]);
    await dp.waitForState((s) => s.services[0]?.canaryWeight === weight && s.services[0]?.killed === killed);
  }

  it('gives the canary its weight in users, never moves a user back, and keeps a user on one version', async () => {
    const onCanary = new Map<number, Set<string>>();
    for (const weight of [10, 25, 50]) {
      await setWeight(weight);
      const answers = await mapLimit(users, 32, (user) => dp.request({ host: 'chat', user }));
      const unexpected = answers.filter((a) => a.status !== 200 || a.headers['x-fledge-reason'] !== 'sticky');
      expect(unexpected.map((a) => [a.status, a.headers['x-fledge-reason']])).toEqual([]);
      const canaryUsers = new Set(users.filter((_, i) => answers[i]!.servedBy === 'v2'));
      const share = (100 * canaryUsers.size) / users.length;
      expect(Math.abs(share - weight)).toBeLessThanOrEqual(3);
      onCanary.set(weight, canaryUsers);
    }
    for (const [lower, higher] of [
      [10, 25],
      [25, 50],
    ] as const) {
      for (const user of onCanary.get(lower)!) expect(onCanary.get(higher)!.has(user)).toBe(true);
    }
    const one = await mapLimit(Array.from({ length: 20 }), 4, () => dp.request({ host: 'chat', user: 'user-7' }));
    expect(new Set(one.map((a) => a.servedBy)).size).toBe(1);
  });

  it('draws at random for requests without a user key, and counts them apart', async () => {
    await setWeight(50);
    const answers = await mapLimit(Array.from({ length: 400 }), 32, () => dp.request({ host: 'chat' }));
    expect(answers.map((a) => a.headers['x-fledge-reason']).filter((r) => r !== 'random')).toEqual([]);
    const canary = answers.filter((a) => a.servedBy === 'v2').length;
    expect(canary).toBeGreaterThan(120);
    expect(canary).toBeLessThan(280);
    const metrics = await dp.metricsText();
    expect(metricValue(metrics, 'fledge_extproc_decisions_total', { reason: 'random' })).toBe(400);
  });

  it('sends 100% to stable from the first request after extproc sees the kill switch', async () => {
    await setWeight(50);
    dp.writeRouting([service(50, true)]);
    // The readiness check for "extproc has seen it"; every request after it must be stable.
    await dp.waitForState((s) => s.services[0]?.killed === true);
    const answers = await mapLimit(users.slice(0, 300), 32, (user) => dp.request({ host: 'chat', user }));
    for (const a of answers) {
      expect(a.servedBy).toBe('v1');
      expect(a.headers['x-fledge-reason']).toBe('killed');
    }
  });

  it('keeps the last good routing state when the routing file is malformed', async () => {
    await setWeight(100);
    dp.writeRouting([{ ...service(100), canaryWeight: 250 }]);
    const log = await dp.waitForLog(/canaryWeight/);
    expect(log).toMatch(/routing\.yaml: services\.chat\.canaryWeight/);
    const answer = await dp.request({ host: 'chat', user: 'user-1' });
    expect(answer.servedBy).toBe('v2');
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
    await disrupt();
    running = false;
    await Promise.all(workers);
    return results;
  }

  it('serves every request from stable while extproc is killed', async () => {
    const results = await loadWhile(async () => {
      await new Promise((r) => setTimeout(r, 300));
      await dp.extproc.kill();
      const during = await Promise.all(Array.from({ length: 50 }, (_, i) => dp.request({ host: 'chat', user: `after-kill-${i}` })));
      expect(during.every((a) => a.status === 200 && a.servedBy === 'v1')).toBe(true);
    });
    // Requests in flight when it died had already been routed; none of them failed.
    expect(results.length).toBeGreaterThan(50);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    await dp.restartExtproc();
    const back = await dp.request({ host: 'chat', user: 'after-restart' });
    expect(back.headers['x-fledge-reason']).toBe('sticky');
  });

  it('serves every request from stable while extproc hangs', async () => {
    const results = await loadWhile(async () => {
      await new Promise((r) => setTimeout(r, 300));
      dp.extproc.child.kill('SIGSTOP');
      try {
        const during = await Promise.all(Array.from({ length: 20 }, (_, i) => dp.request({ host: 'chat', user: `while-hung-${i}` })));
        expect(during.every((a) => a.status === 200 && a.servedBy === 'v1')).toBe(true);
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
    await mapLimit(Array.from({ length: 600 }, (_, i) => `m-${i}`), 24, (user) => dp.request({ host: 'chat', user }));
    const metrics = await dp.metricsText();
    const stableServed = dp.sim('chat', 'v1').stats().requests;
    const canaryServed = dp.sim('chat', 'v2').stats().requests;
    expect(stableServed + canaryServed).toBe(600);
    expect(canaryServed).toBeGreaterThan(0);
    expect(metricValue(metrics, 'inference_requests_total', { service: 'chat', version: 'v1', rollout_hash: 'stablehash' })).toBe(stableServed);
    expect(metricValue(metrics, 'inference_requests_total', { service: 'chat', version: 'v2', rollout_hash: 'canaryhash' })).toBe(canaryServed);
    expect(metricValue(metrics, 'inference_latency_seconds_count', { version: 'v2' })).toBe(canaryServed);
    expect(metricValue(metrics, 'inference_errors_total', {})).toBe(0);
    expect(metricValue(metrics, 'fledge_extproc_phase_duration_seconds_count', { phase: 'request_headers' })).toBe(600);
  });

  it('counts 5xx answers as errors of the version that gave them', async () => {
    dp.sim('chat', 'v2').patchKnobs({ errorRate: 1, errorStatus: 503 });
    const before = metricValue(await dp.metricsText(), 'inference_errors_total', { version: 'v2' });
    const answers = await mapLimit(Array.from({ length: 200 }, (_, i) => `e-${i}`), 24, (user) => dp.request({ host: 'chat', user }));
    const failed = answers.filter((a) => a.status === 503).length;
    expect(failed).toBeGreaterThan(0);
    expect(metricValue(await dp.metricsText(), 'inference_errors_total', { version: 'v2' }) - before).toBe(failed);
  });
});
