// `fledge extproc --workers 2` behind a real Envoy, as a user runs it: the workers share the
// ext_proc port (Envoy's connections rotate every 500 streams, so both get some), decide
// exactly as one process does, and the primary's admin port speaks for all of them: one
// /metrics, /readyz, /debug/state. What one worker learns (a guardrail trip) reaches the
// others, and a worker that dies is started again and learns it too.
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCanaryBucket, stickyBucket } from '../../extproc/sticky.js';
import { DataPlane, metricValue, type ServiceSpec } from '../harness/dataplane.js';

const seedFlags = readFileSync(resolve(import.meta.dirname, '../fixtures/seed/flags.json'), 'utf8');
const users = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const GUARDRAIL = { errorRate: 0.1, hallucinationRate: 0.2, minSamples: 50, window: 50, maxAgeSeconds: 60 };
const chat: ServiceSpec = { name: 'chat', stable: 'v1.2', canary: 'v1.3', canaryWeight: 50, rolloutHashes: { 'v1.2': 'h12', 'v1.3': 'h13' } };
const guarded: ServiceSpec = { name: 'guarded', stable: 'v1', canary: 'v2', canaryWeight: 50, rolloutHashes: { v1: 'g1', v2: 'g2' }, guardrail: GUARDRAIL };

interface WorkerSummary {
  index: number;
  pid: number;
  decisions: number;
  flagsGeneration: number | null;
  guardrailTrips: number;
  inSync: boolean;
}
type State = Awaited<ReturnType<DataPlane['debugState']>> & { inSync: boolean; workers: WorkerSummary[] };

describe('extproc with --workers 2 behind Envoy', () => {
  const dp = new DataPlane({
    extprocWorkers: 2,
    // The guarded canary fails every request: its guardrail trips in whichever worker sees 50 first.
    knobs: { 'guarded/v2': { latency: { kind: 'fixed', ms: 1 }, errorRate: 1 } },
  });
  const state = async () => (await dp.debugState()) as State;
  beforeAll(async () => {
    await dp.start([chat, guarded], seedFlags);
  });
  afterAll(() => dp.stop());

  it('decides every request like one process, over both workers, and counts them once on one /metrics', async () => {
    const start = await state();
    expect(start.workers.map((w) => w.index)).toEqual([1, 2]);
    expect(new Set(start.workers.map((w) => w.pid)).size).toBe(2);
    expect(start.inSync).toBe(true);

    // 1,200 requests: Envoy rotates its ext_proc connection every 500 streams, the primary hands
    // each new connection to the next worker.
    const beta = users('beta', 300);
    const rounds = [...beta, ...beta, ...beta, ...beta];
    const { answers, decided } = await dp.decided(rounds, (user) => dp.request({ host: 'chat', user, segment: 'beta' }));
    const byUser = new Map<string, Set<string>>();
    answers.forEach((a, i) => {
      expect(a.status).toBe(200);
      if (!decided[i]) return;
      const user = rounds[i]!;
      // The seed's flag sends a beta user to v1.3 by fractional(targetingKey); its other half
      // falls through to the canary weight by the user's bucket. Either way, one version per user.
      const reason = a.headers['x-fledge-reason'];
      const expected = reason === 'flag' ? 'v1.3' : isCanaryBucket(stickyBucket('chat', user), 50) ? 'v1.3' : 'v1.2';
      expect([reason === 'flag' || reason === 'sticky', a.servedBy]).toEqual([true, expected]);
      byUser.set(user, (byUser.get(user) ?? new Set()).add(`${a.servedBy} ${reason}`));
    });
    expect([...byUser.values()].every((versions) => versions.size === 1)).toBe(true);
    const onNew = [...byUser.values()].filter((v) => [...v][0]!.startsWith('v1.3')).length / byUser.size;
    // Half by the flag, then half of the rest by the weight: about three in four.
    expect(onNew).toBeGreaterThan(0.6);
    expect(onNew).toBeLessThan(0.9);

    const after = await state();
    const made = after.workers.map((w) => w.decisions - (start.workers.find((s) => s.index === w.index)?.decisions ?? 0));
    expect(made.every((n) => n > 0)).toBe(true);
    const metrics = await dp.metricsText();
    // One /metrics: the workers' counters summed, equal to what the workers report one by one.
    expect(metricValue(metrics, 'fledge_extproc_decisions_total', { service: 'chat' })).toBe(after.workers.reduce((n, w) => n + w.decisions, 0));
    const byReason = (reason: string) => metricValue(metrics, 'fledge_extproc_decisions_total', { service: 'chat', reason });
    expect(byReason('flag') + byReason('sticky')).toBeGreaterThanOrEqual(decided.filter(Boolean).length);
    // Every answer extproc saw through is counted once, by whichever worker had it.
    const counted = metricValue(metrics, 'inference_requests_total', { service: 'chat' });
    expect(counted).toBeGreaterThanOrEqual(decided.filter(Boolean).length);
    expect(counted).toBeLessThanOrEqual(answers.length);
    expect(metrics).toMatch(/^fledge_extproc_workers 2$/m);
    // Each worker's series carry its number, so a restarted worker resets only its own counters.
    for (const worker of ['1', '2']) expect(metricValue(metrics, 'fledge_extproc_decisions_total', { service: 'chat', worker })).toBe(after.workers.find((w) => String(w.index) === worker)!.decisions);
  }, 120_000);

  it('runs a new flag file in every worker before /debug/state says so', async () => {
    const before = await state();
    const withKill = JSON.parse(seedFlags) as { flags: Record<string, unknown> };
    withKill.flags['inference-kill-switch'] = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };
    writeFileSync(dp.flagsFile, JSON.stringify(withKill));
    await dp.waitForState((s) => (s as State).workers.every((w, i) => (w.flagsGeneration ?? 0) > (before.workers[i]!.flagsGeneration ?? 0)));
    const killed = await dp.decided(users('staff', 60), (user) => dp.request({ host: 'chat', user, segment: 'internal' }));
    killed.answers.forEach((a, i) => {
      if (killed.decided[i]) expect([a.servedBy, a.headers['x-fledge-reason']]).toEqual(['v1.2', 'kill-switch']);
    });
    expect(killed.decided.filter(Boolean).length).toBeGreaterThan(30);
    writeFileSync(dp.flagsFile, seedFlags);
    await dp.waitForState((s) => (s as State).workers.every((w, i) => (w.flagsGeneration ?? 0) > (before.workers[i]!.flagsGeneration ?? 0) + 1));
  }, 60_000);

  it('shares a guardrail trip with the other worker, and with a worker started after it', async () => {
    // Until the trip, about half of these users reach the failing canary; requests go on until every worker holds the trip.
    for (let round = 0; round < 40; round++) {
      await dp.decided(users(`g${round}`, 100), (user) => dp.request({ host: 'guarded', user }));
      if ((await state()).workers.every((w) => w.guardrailTrips === 1)) break;
    }
    const tripped = await state();
    expect(tripped.workers.map((w) => w.guardrailTrips)).toEqual([1, 1]);
    const metrics = await dp.metricsText();
    // Tripped in both workers, each on its own series (the controller reads max() over them).
    for (const worker of ['1', '2']) expect(metricValue(metrics, 'fledge_guardrail_tripped', { service: 'guarded', version: 'v2', signal: 'errors', worker })).toBe(1);
    // One worker tripped on its own window, the other applied it as a peer's.
    // Envoy's one ext_proc connection at a time carries a whole round to one worker, so the trip
    // comes from that worker's window and the other holds it only by the primary's relay.
    expect(metricValue(metrics, 'fledge_guardrail_trips_total', { service: 'guarded', origin: 'local' })).toBe(1);
    expect(metricValue(metrics, 'fledge_guardrail_trips_total', { service: 'guarded', origin: 'peer' })).toBe(1);
    const afterTrip = await dp.decided(users('late', 100), (user) => dp.request({ host: 'guarded', user }));
    afterTrip.answers.forEach((a, i) => {
      if (afterTrip.decided[i]) expect([a.status, a.servedBy, a.headers['x-fledge-reason']]).toEqual([200, 'v1', 'guardrail']);
    });

    // A worker dies: the primary starts it again, /readyz says so meanwhile, and the new
    // process learns the trip from the primary's welcome (no Redis here) before it listens.
    const victim = tripped.workers[0]!;
    process.kill(victim.pid, 'SIGKILL');
    await dp.waitForState((s) => (s as State).workers.some((w) => w.index === victim.index && w.pid !== undefined && w.pid !== victim.pid), 30_000);
    const res = await fetch(`http://127.0.0.1:${dp.adminPort}/readyz`);
    expect(res.status).toBe(200);
    const restarted = (await state()).workers.find((w) => w.index === victim.index)!;
    expect(restarted.guardrailTrips).toBe(1);
    const afterRestart = await dp.metricsText();
    expect(afterRestart).toMatch(/^fledge_extproc_worker_restarts_total 1$/m);
    expect(metricValue(afterRestart, 'fledge_guardrail_tripped', { service: 'guarded', version: 'v2', worker: String(victim.index) })).toBe(1);
  }, 120_000);
});

describe('extproc with --workers 2 on a Unix socket, beside an Envoy with 2 worker threads', () => {
  // The deployment beside a gateway: one socket, Envoy's threads each with a connection to it.
  const dp = new DataPlane({ extprocWorkers: 2, extprocSocket: true, envoyConcurrency: 2 });
  const state = async () => (await dp.debugState()) as State;
  beforeAll(async () => {
    await dp.start([{ name: 'chat', stable: 'v1', canary: 'v2', canaryWeight: 30 }]);
  });
  afterAll(() => dp.stop());

  it('serves both workers through the one socket and decides each user as one process would', async () => {
    expect(lstatSync(dp.extprocSocket).isSocket()).toBe(true);
    const before = await state();
    const people = users('uds', 200);
    const rounds = [...people, ...people, ...people];
    // 16 clients in parallel: Envoy's two threads each hold a connection, the primary gave them to different workers.
    const { answers, decided } = await dp.decided(rounds, (user) => dp.request({ host: 'chat', user }), 16);
    expect(decided.filter(Boolean).length).toBeGreaterThan(rounds.length / 2);
    answers.forEach((a, i) => {
      if (!decided[i]) return;
      const expected = isCanaryBucket(stickyBucket('chat', rounds[i]!), 30) ? 'v2' : 'v1';
      expect([a.status, a.headers['x-fledge-reason'], a.servedBy]).toEqual([200, 'sticky', expected]);
    });
    const after = await state();
    const made = after.workers.map((w, i) => w.decisions - before.workers[i]!.decisions);
    expect(made.every((n) => n > 0)).toBe(true);
    expect(made.reduce((a, b) => a + b, 0)).toBe(metricValue(await dp.metricsText(), 'fledge_extproc_decisions_total', { service: 'chat' }));
  }, 60_000);
});
