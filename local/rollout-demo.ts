/**
 * The rollout demo (`fledge demo`): the local stack with the local controller, realistic
 * traffic on two services, and two rollouts under the built-in `shadow-canary` policy (a
 * shadow stage, then the default policy's canary stages) on a
 * compressed time scale: `chat` healthy (promoted), `assistant` starting to hallucinate at
 * weight 25 (rolled back). It follows each rollout's status file while it runs and returns
 * one summary per rollout.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { stringify as toYaml } from 'yaml';
import type { RolloutStatus } from '../controller/kube/rollout-status.js';
import { writeAtomically } from '../controller/local/traffic-state.js';
import { LocalStateStore } from '../controller/local/state-store.js';
import { loadShadowPolicy } from '../controller/policy/load.js';
import { DEMO_ROLLOUTS, demoGoldenFile, demoRequest, demoRolloutsFile, demoStackConfig, demoUsers, type DemoRolloutPlan } from './rollout-demo-config.js';
import { RolloutRecorder } from './rollout-demo-recorder.js';
import { summarizeRollout, type RolloutSummary } from './rollout-demo-summary.js';
import { preflight, PreflightError } from './preflight.js';
import { modelServers, type StackPorts } from './stack-config.js';
import { LocalStack, type StackComponent } from './stack.js';
import { TrafficGenerator } from './traffic.js';

/** What every rollout demo (simulated or real models) is run with. */
export interface DemoRunOptions {
  ports: StackPorts;
  timeScale: number;
  /** Kept after the run when given; otherwise a temporary dir, removed unless the run failed. */
  stateDir?: string;
  logger: Logger;
  /** Which command-line flag sets each port (for preflight messages), keyed like StackPorts. */
  portFlags?: Partial<Record<keyof StackPorts, string>>;
  /** Aborting (Ctrl-C) stops the demo and the whole stack. */
  signal?: AbortSignal;
}

export interface RolloutDemoOptions extends DemoRunOptions {
  /** Requests per second per service. */
  rps: number;
}

export interface RolloutDemoEvents {
  componentUp?(c: StackComponent): void;
  /** Traffic is flowing and the rollouts file is written: the rollouts begin. */
  rolloutsStarted?(names: string[]): void;
  status?(name: string, status: RolloutStatus): void;
  fault?(name: string, knobs: Record<string, unknown>): void;
}

export interface RolloutDemoResult {
  rollouts: RolloutSummary[];
  stateDir: string;
}

/** Phases after which a rollout will not move on without a person. */
const SETTLED = new Set(['Promoted', 'RolledBack', 'Failed', 'Invalid', 'AwaitingReview']);

export async function runRolloutDemo(o: RolloutDemoOptions, events: RolloutDemoEvents = {}): Promise<RolloutDemoResult> {
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'fledge-demo-'));
  const rolloutsFile = join(stateDir, 'rollouts.yaml');
  const goldenFile = join(stateDir, 'golden.yaml');
  writeFileSync(goldenFile, toYaml(demoGoldenFile()));
  const config = demoStackConfig(o.ports, goldenFile);
  const stack = new LocalStack(config, { stateDir, controller: { rolloutsFile, timeScale: o.timeScale } });
  const claims = stack.portClaims().map((c) => ({ ...c, setting: o.portFlags?.[c.setting.replace(/^ports\./, '') as keyof StackPorts] ?? c.setting }));
  const problems = await preflight(claims, { envoy: true, prometheus: true, redis: true });
  if (problems.length) throw new PreflightError(problems);

  writeAtomically(rolloutsFile, toYaml({ rollouts: [] }));
  const traffic = new Map<string, TrafficGenerator>();
  let succeeded = false;
  try {
    await stack.start((c) => events.componentUp?.(c));
    o.signal?.throwIfAborted();
    const prometheusUrl = `http://127.0.0.1:${config.ports.prometheus}`;
    await waitForPrometheus(prometheusUrl, 'up == 1', 'Prometheus to scrape extproc');
    const users = demoUsers();
    for (const plan of DEMO_ROLLOUTS) {
      const generator = new TrafficGenerator({ port: config.ports.envoy, host: plan.service, rps: o.rps, users, request: demoRequest(plan.service) });
      traffic.set(plan.service, generator);
      generator.start();
    }
    // The analyses compare with the stable version: let its series exist before the rollouts start.
    for (const plan of DEMO_ROLLOUTS) await waitForPrometheus(prometheusUrl, `inference_requests_total{service="${plan.service}"}`, `stable traffic of ${plan.service} in Prometheus`);
    o.logger.info({ rollouts: DEMO_ROLLOUTS.map((r) => r.name), timeScale: o.timeScale, rps: o.rps }, 'traffic flowing; starting the rollouts');
    writeAtomically(rolloutsFile, toYaml(demoRolloutsFile()));
    events.rolloutsStarted?.(DEMO_ROLLOUTS.map((r) => r.name));

    const crashed = stack.firstExit().then((c) => {
      throw new Error(`${c.name} exited during the demo; its log is in ${stateDir}`);
    });
    crashed.catch(() => undefined); // the stack's own stop at the end makes every component exit
    const policy = loadShadowPolicy();
    const budgetMs = (totalPauseMs(policy) / o.timeScale) * 2 + 60_000;
    const followed = await Promise.race([Promise.all(DEMO_ROLLOUTS.map((plan) => followRollout(plan, stack, o, events, budgetMs))), crashed]);
    for (const t of traffic.values()) await t.stop();

    const rollouts = followed.map(({ plan, recorder, faultAt, trafficOffAt }) => {
      const t = traffic.get(plan.service)!;
      return summarizeRollout({
        name: plan.name,
        policy,
        final: recorder.status,
        runs: recorder.analysisRuns(),
        evidence: recorder.evidenceStages(),
        lastStepIndex: recorder.lastStepIndex(),
        requests: t.answers.length + t.shed,
        failedRequests: t.failures().length + t.shed,
        ...(faultAt === undefined ? {} : { faultAt }),
        ...(trafficOffAt === undefined ? {} : { trafficOffAt }),
      });
    });
    succeeded = true;
    return { rollouts, stateDir };
  } catch (err) {
    throw new Error(`the rollout demo failed: ${(err as Error).message} (state and every component's log kept in ${stateDir})`, { cause: err });
  } finally {
    for (const t of traffic.values()) await t.stop();
    await stack.stop();
    if (succeeded && !o.stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
}

interface Followed {
  plan: DemoRolloutPlan;
  recorder: RolloutRecorder;
  faultAt?: number;
  trafficOffAt?: number;
}

/** Polls the rollout's status until it settles, injecting the plan's fault when its weight is reached. */
async function followRollout(plan: DemoRolloutPlan, stack: LocalStack, o: RolloutDemoOptions, events: RolloutDemoEvents, budgetMs: number): Promise<Followed> {
  const store = new LocalStateStore(stack.paths.stateDir);
  const recorder = new RolloutRecorder();
  const followed: Followed = { plan, recorder };
  let trafficOff: Promise<number> | undefined;
  const deadline = Date.now() + budgetMs;
  for (;;) {
    const stored = store.read(plan.name);
    if (stored.kind === 'ok') {
      if (recorder.observe(stored.status)) events.status?.(plan.name, stored.status);
      const s = stored.status;
      if (plan.fault && followed.faultAt === undefined && s.phase === 'Progressing' && s.weight >= plan.fault.atWeight) {
        followed.faultAt = await injectFault(stack, plan, plan.fault.knobs);
        o.logger.info({ rollout: plan.name, knobs: plan.fault.knobs, weight: s.weight }, 'fault injected into the candidate');
        events.fault?.(plan.name, plan.fault.knobs);
        trafficOff = waitForCanaryOff(stack, plan, deadline);
        // Awaited only if the rollout is rolled back; never left to reject unhandled.
        trafficOff.catch(() => undefined);
      }
      if (SETTLED.has(s.phase) || (s.phase === 'Paused' && s.pause?.reason !== 'step')) break;
    }
    o.signal?.throwIfAborted();
    if (Date.now() > deadline) throw new Error(`rollout ${plan.name} did not settle within ${Math.round(budgetMs / 1000)} s; last status: ${JSON.stringify(recorder.status ?? null)}`);
    await sleep(100);
  }
  if (trafficOff && recorder.status?.phase === 'RolledBack') followed.trafficOffAt = await trafficOff;
  return followed;
}

/** PATCHes the candidate's knobs; returns when the sim accepted them (epoch ms). */
async function injectFault(stack: LocalStack, plan: DemoRolloutPlan, knobs: Record<string, unknown>): Promise<number> {
  const sim = modelServers(stack.config).find((m) => m.service === plan.service && m.version === plan.candidate);
  if (!sim) throw new Error(`no model server for ${plan.service}/${plan.candidate} in the demo stack`);
  const url = `http://127.0.0.1:${sim.port}/admin/knobs`;
  const res = await fetch(url, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify(knobs) });
  if (!res.ok) throw new Error(`PATCH ${url} answered HTTP ${res.status}: ${await res.text()}`);
  return Date.now();
}

/** The first moment Envoy's route gives the canary no weight (epoch ms), from Envoy's config dump. */
async function waitForCanaryOff(stack: LocalStack, plan: DemoRolloutPlan, deadline: number): Promise<number> {
  for (;;) {
    const weight = await stack.routes.canaryWeightInForce(plan.service, plan.candidate);
    if (!weight) return Date.now();
    if (Date.now() > deadline) throw new Error(`Envoy still gives ${plan.service}/${plan.candidate} weight ${weight}`);
    await sleep(25);
  }
}

async function waitForPrometheus(url: string, query: string, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`);
      const body = (await res.json()) as { data?: { result?: unknown[] } };
      if ((body.data?.result?.length ?? 0) > 0) return;
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs / 1000} s for ${what} (query ${query} at ${url} returned nothing)`);
    await sleep(200);
  }
}

function totalPauseMs(policy: { steps: { kind: string; durationMs?: number }[] }): number {
  return policy.steps.reduce((sum, s) => sum + (s.kind === 'pause' || s.kind === 'shadow' ? (s.durationMs ?? 0) : 0), 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
