// The data-plane guardrail end to end on the real local stack (Envoy, extproc, Redis,
// Prometheus, sims, the local controller), with the seed's flag file verbatim: a canary that
// starts failing is taken off by extproc itself once its window shows a hard breach, a
// second extproc replica (its own Envoy, no failing traffic of its own) follows through
// Redis, and the controller records RolledBack naming the guardrail. Then the abort path
// through the local controller: `fledge retry`, `fledge abort`, and 2,000 users (internal and
// beta included) get nothing from the candidate.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import type { RolloutStatus } from '../../controller/kube/rollout-status.js';
import { LocalStateStore } from '../../controller/local/state-store.js';
import { readTrafficState, renderEnvoyServices } from '../../controller/local/traffic-state.js';
import { DEFAULT_GUARDRAIL } from '../../controller/policy/default-policy.js';
import type { Trip } from '../../extproc/guardrail/guardrail.js';
import { startProcess, waitForHttp, type ManagedProcess } from '../../local/child-process.js';
import { startEnvoy, type RunningEnvoy } from '../../local/envoy.js';
import { EnvoyRouteFile } from '../../controller/traffic/envoy/route-file.js';
import { freePort } from '../../local/ports.js';
import { modelServers, stackConfigSchema } from '../../local/stack-config.js';
import { LocalStack } from '../../local/stack.js';
import { CLI } from '../harness/dataplane.js';
import { chat, mapLimit, type ModelResponse } from '../harness/http-client.js';
import { freeStackPorts } from '../harness/stack-ports.js';

const run = promisify(execFile);
const seedFlagsFile = resolve(import.meta.dirname, '../fixtures/seed/flags.json');
/** 2,000 users: a tenth internal, a fifth beta (the seed's flag sends them to v1.3), the rest free. */
const population = Array.from({ length: 2000 }, (_, i) => ({ user: `user-${i}`, segment: i % 10 === 0 ? 'internal' : i % 5 === 1 ? 'beta' : 'free' }));
const STABLE = 'v1.2';
const CANDIDATE = 'v1.3';
const ROLLOUT = 'chat-v1.3';

interface DebugState {
  routingGeneration: number;
  guardrail: { trips: Trip[] };
}

describe('data-plane guardrail on the local stack', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-guardrail-'));
  const stateDir = join(dir, 'state');
  const store = new LocalStateStore(stateDir);
  let stack: LocalStack;
  let replicaB: { extproc: ManagedProcess; envoy: RunningEnvoy; adminPort: number } | undefined;
  let ports: Record<string, number>;

  const status = (): RolloutStatus => {
    const stored = store.read(ROLLOUT);
    if (stored.kind !== 'ok') throw new Error(`${ROLLOUT} has no readable status: ${stored.kind}`);
    return stored.status;
  };
  const waitForStatus = async (what: string, ok: (s: RolloutStatus) => boolean, timeoutMs = 60_000): Promise<RolloutStatus> => {
    const deadline = Date.now() + timeoutMs;
    let last: RolloutStatus | undefined;
    for (;;) {
      const stored = store.read(ROLLOUT);
      if (stored.kind === 'ok') {
        last = stored.status;
        if (ok(last)) return last;
      }
      if (Date.now() > deadline) throw new Error(`${ROLLOUT} did not reach ${what} in ${timeoutMs} ms; last status ${JSON.stringify(last)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const debugState = async (adminPort: number): Promise<DebugState> => (await (await fetch(`http://127.0.0.1:${adminPort}/debug/state`)).json()) as DebugState;
  const waitForTrips = async (adminPort: number, ok: (trips: Trip[]) => boolean, what: string): Promise<Trip[]> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { trips } = (await debugState(adminPort)).guardrail;
      if (ok(trips)) return trips;
      if (Date.now() > deadline) throw new Error(`extproc on admin port ${adminPort}: ${what} not seen in 10 s; trips ${JSON.stringify(trips)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const send = (port: number, users = population) => mapLimit(users, 16, (p) => chat(port, { host: 'chat', user: p.user, segment: p.segment }));
  const served = (answers: ModelResponse[], version: string) => answers.filter((a) => a.servedBy === version).length;
  const bySegment = (answers: ModelResponse[], users: typeof population, version: string) => {
    const out: Record<string, number> = {};
    answers.forEach((a, i) => {
      if (a.servedBy === version) out[users[i]!.segment] = (out[users[i]!.segment] ?? 0) + 1;
    });
    return out;
  };
  const setCandidateKnobs = async (knobs: Record<string, unknown>) => {
    const sim = modelServers(stack.config).find((m) => m.version === CANDIDATE)!;
    const res = await fetch(`http://127.0.0.1:${sim.port}/admin/knobs`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify(knobs) });
    expect(res.status).toBe(200);
  };
  const fledge = async (args: string[]) => (await run(process.execPath, [CLI, ...args, '--state-dir', stateDir])).stdout;

  beforeAll(async () => {
    ports = await freeStackPorts(2);
    const fast = { knobs: { latency: { kind: 'fixed', ms: 1 } } };
    const config = stackConfigSchema.parse({ ports, services: { chat: { stable: STABLE, versions: { [STABLE]: fast, [CANDIDATE]: fast } } }, probes: { enabled: false } });
    mkdirSync(dir, { recursive: true });
    // The default policy's guardrail, verbatim, on a rollout that holds at 30% until told otherwise.
    const { maxAge, checkInterval, ...limits } = DEFAULT_GUARDRAIL;
    writeFileSync(
      join(dir, 'guarded.yaml'),
      toYaml({ apiVersion: 'fledge.dev/v1alpha1', kind: 'Policy', metadata: { name: 'guarded' }, spec: { steps: [{ setWeight: 30 }, { pause: {} }], guardrail: { ...limits, maxAge, checkInterval } } }),
    );
    const rolloutsFile = join(dir, 'rollouts.yaml');
    writeFileSync(rolloutsFile, toYaml({ policies: ['guarded.yaml'], rollouts: [{ name: ROLLOUT, service: 'chat', candidate: CANDIDATE, policy: 'guarded' }] }));
    // Time scale 1: the guardrail's production check interval (5 s) as deployed.
    stack = new LocalStack(config, { stateDir, flagsFile: seedFlagsFile, controller: { rolloutsFile, timeScale: 1 } });
    await stack.start(() => undefined);
  }, 120_000);

  afterAll(async () => {
    await replicaB?.envoy.process.stop();
    await replicaB?.extproc.stop();
    await stack?.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });

  /** A second extproc replica on the same routing file and Redis, with an Envoy of its own. */
  async function startReplicaB(): Promise<NonNullable<typeof replicaB>> {
    const bDir = join(dir, 'replica-b');
    mkdirSync(join(bDir, 'routes'), { recursive: true });
    const grpcPort = await freePort();
    const adminPort = await freePort();
    writeFileSync(join(bDir, 'extproc.yaml'), toYaml({ guardrail: { redisUrl: `redis://127.0.0.1:${ports.redis}` } }));
    const extproc = startProcess(
      'extproc-b',
      process.execPath,
      [CLI, 'extproc', '--routing-file', stack.routingFile, '--flags-file', seedFlagsFile, '--port', String(grpcPort), '--admin-port', String(adminPort), '--config', join(bDir, 'extproc.yaml')],
      join(bDir, 'extproc.log'),
    );
    await waitForHttp(extproc, `http://127.0.0.1:${adminPort}/readyz`);
    const envoyAdmin = await freePort();
    const routes = new EnvoyRouteFile(join(bDir, 'routes', 'routes.json'), `http://127.0.0.1:${envoyAdmin}`);
    const services = renderEnvoyServices(readTrafficState(stack.trafficFile));
    const first = routes.write(services);
    const envoy = await startEnvoy({ listenPort: await freePort(), adminPort: envoyAdmin, extprocPort: grpcPort, services, routesFile: routes.file }, bDir, 'envoy-b');
    await routes.waitApplied(first);
    return { extproc, envoy, adminPort };
  }

  it('a failing canary is taken off by extproc on the 6th failure of 50, every replica follows, and the controller rolls back naming the guardrail', async () => {
    await waitForStatus('the pause at 30%', (s) => s.phase === 'Paused' && s.weight === 30);
    replicaB = await startReplicaB();
    const envoyA = ports.envoy!;
    const envoyB = Number(new URL(replicaB.envoy.listenUrl).port);

    // Healthy: both replicas route the flag's segments and 30% of the rest to the candidate.
    const usersBefore = population.slice(0, 500);
    for (const port of [envoyA, envoyB]) {
      const before = await send(port, usersBefore);
      expect(before.filter((a) => a.status !== 200)).toEqual([]);
      expect(served(before, CANDIDATE)).toBeGreaterThan(100);
    }
    expect((await debugState(ports.extprocAdmin!)).guardrail.trips).toEqual([]);

    // The fault: every candidate answer is a 500. Traffic only through replica A.
    await setCandidateKnobs({ errorRate: 1 });
    let candidateFailures = 0;
    let sent = 0;
    let trips: Trip[] = [];
    while (trips.length === 0) {
      const batch = await mapLimit(population.slice(sent % 2000, (sent % 2000) + 8), 4, (p) => chat(envoyA, { host: 'chat', user: p.user, segment: p.segment }));
      sent += 8;
      candidateFailures += batch.filter((a) => a.servedBy === CANDIDATE && a.status >= 500).length;
      trips = (await debugState(ports.extprocAdmin!)).guardrail.trips;
      if (sent > 2000) throw new Error(`no trip after ${sent} requests (${candidateFailures} candidate failures)`);
    }
    // The window (50 outcomes, all healthy before) trips strictly above 10%: on the 6th failure.
    expect(trips).toHaveLength(1);
    const trip = trips[0]!;
    expect(trip).toMatchObject({ service: 'chat', version: CANDIDATE, signal: 'errors', bad: 6, n: 50, limit: 0.1 });
    expect(candidateFailures).toBeGreaterThanOrEqual(6);
    expect(candidateFailures).toBeLessThanOrEqual(6 + 8); // at most one batch in flight past the trip

    // Replica B saw no failure itself; it has A's trip through Redis.
    const tripsB = await waitForTrips(replicaB.adminPort, (t) => t.length === 1, 'the peer trip');
    expect(tripsB[0]).toEqual(trip);

    // The flag's internal users, right away through both replicas: while the routing state
    // still names the canary (the controller has not retired it yet), the guardrail is why
    // they get stable.
    const internal = population.filter((p) => p.segment === 'internal').slice(0, 40);
    for (const [port, adminPort] of [[envoyB, replicaB.adminPort], [envoyA, ports.extprocAdmin!]] as const) {
      const generation = (await debugState(adminPort)).routingGeneration;
      const answers = await send(port, internal);
      expect(answers.filter((a) => a.status !== 200 || a.servedBy !== STABLE)).toEqual([]);
      if ((await debugState(adminPort)).routingGeneration === generation && status().phase !== 'RolledBack') {
        expect(new Set(answers.map((a) => a.headers['x-fledge-reason']))).toEqual(new Set(['guardrail']));
        // Counted on /metrics as well (B on A's trip, which it got through Redis).
        const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
        expect(metrics).toMatch(/fledge_extproc_decisions_total\{service="chat",version="v1\.2",reason="guardrail"\} [1-9]/);
      } else {
        console.info(`extproc ${adminPort}: the controller retired the candidate before the check; reasons ${[...new Set(answers.map((a) => a.headers['x-fledge-reason']))].join(', ')}`);
      }
    }
    // From now on nobody reaches the candidate through either replica: not the flag's internal
    // or beta users, not the weight's bucket; and nobody sees an error.
    const afterB = await send(envoyB, population.slice(0, 1000));
    const afterA = await send(envoyA);
    for (const answers of [afterA, afterB]) {
      expect(answers.filter((a) => a.status !== 200).map((a) => a.status)).toEqual([]);
      expect(served(answers, CANDIDATE)).toBe(0);
    }

    // The controller sees the trip (Prometheus, its 5 s check) and rolls back, naming the guardrail.
    const rolledBack = await waitForStatus('RolledBack', (s) => s.phase === 'RolledBack', 30_000);
    expect(rolledBack.weight).toBe(0);
    expect(rolledBack.message).toMatch(/guardrail: metric guardrail failed: value 1 breached result\[0\] < 1; all traffic returned to stable/);
    expect(store.readEvents(ROLLOUT).some((e) => e.reason === 'RolledBack' && e.message.includes('metric guardrail failed'))).toBe(true);
    expect(await stack.routes.canaryWeightInForce('chat', CANDIDATE)).toBeFalsy();
    // Retired: both replicas forget the trip (a retry starts clean), and the candidate still gets nobody.
    await waitForTrips(ports.extprocAdmin!, (t) => t.length === 0, 'the trip cleared');
    await waitForTrips(replicaB.adminPort, (t) => t.length === 0, 'the trip cleared');
    const retired = await send(envoyA);
    expect(retired.filter((a) => a.status !== 200)).toEqual([]);
    expect(bySegment(retired, population, CANDIDATE)).toEqual({});
  }, 180_000);

  it('fledge retry rolls the healed candidate out again; fledge abort leaves 2,000 users, internal and beta included, with zero requests on it', async () => {
    await setCandidateKnobs({ errorRate: 0 });
    await fledge(['retry', ROLLOUT]);
    await waitForStatus('the pause at 30% again', (s) => s.phase === 'Paused' && s.weight === 30);
    const rolling = await send(ports.envoy!);
    expect(rolling.filter((a) => a.status !== 200)).toEqual([]);
    const segments = bySegment(rolling, population, CANDIDATE);
    expect(segments.internal).toBe(200); // the seed's flag: every internal user
    expect(segments.beta).toBeGreaterThan(100);
    expect(segments.free).toBeGreaterThan(0);
    expect((await debugState(ports.extprocAdmin!)).guardrail.trips).toEqual([]);

    expect(await fledge(['abort', ROLLOUT])).toContain('abort requested');
    const aborted = await waitForStatus('RolledBack by abort', (s) => s.phase === 'RolledBack' && /aborted by user/.test(s.message ?? ''));
    expect(aborted.weight).toBe(0);
    for (const port of [ports.envoy!, Number(new URL(replicaB!.envoy.listenUrl).port)]) {
      const answers = await send(port);
      expect(answers.filter((a) => a.status !== 200)).toEqual([]);
      expect(bySegment(answers, population, CANDIDATE)).toEqual({});
    }
    expect(status().phase).toBe('RolledBack');
  }, 180_000);
});
