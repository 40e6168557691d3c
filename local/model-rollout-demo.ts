/**
 * The real-model rollout (`fledge demo --model smollm2`, `make demo-model`): the local stack
 * with configurations of SmolLM2 behind `fledge model` (examples/real-model/), golden
 * probes scoring their real answers, and two rollouts at once under the example policy,
 * which compares the candidate with the stable: a healthy configuration (promoted) and
 * broken sampling (temperature 2; rolled back). No simulated model, no user
 * traffic: every number is a golden check of an answer the model wrote.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { RolloutStatus } from '../controller/kube/rollout-status.js';
import { LocalStateStore } from '../controller/local/state-store.js';
import { writeAtomically } from '../controller/local/traffic-state.js';
import { loadPolicyFiles } from '../controller/policy/load.js';
import type { Policy } from '../controller/policy/policy.js';
import { MODEL_DEMO_ROLLOUTS, MODEL_POLICY_FILE, MODEL_POLICY_NAME, MODEL_STACK_FILE, type ModelRolloutPlan } from './model-rollout-demo-plan.js';
import { preflight, PreflightError } from './preflight.js';
import { RolloutRecorder } from './rollout-demo-recorder.js';
import type { DemoRunOptions } from './rollout-demo.js';
import { summarizeRollout, type RolloutSummary } from './rollout-demo-summary.js';
import { loadStackConfig, stackConfigSchema, type StackConfig, type StackPorts } from './stack-config.js';
import { LocalStack, type StackComponent } from './stack.js';

export interface ModelDemoOptions extends DemoRunOptions {
  /** Golden probes per second per version. */
  probeRate: number;
}

export interface ModelDemoEvents {
  componentUp?(c: StackComponent): void;
  rolloutStarted?(plan: ModelRolloutPlan): void;
  status?(name: string, status: RolloutStatus): void;
}

export interface ModelDemoResult {
  rollouts: RolloutSummary[];
  stateDir: string;
  /** What each version of the stack is (its `fledge model` configuration), for the summary. */
  versions: Record<string, string>;
}

const SETTLED = new Set(['Promoted', 'RolledBack', 'Failed', 'Invalid', 'AwaitingReview']);

/** The example stack file with the demo's ports and probe rate. */
export function modelDemoStackConfig(ports: StackPorts, probeRate: number): StackConfig {
  const example = loadStackConfig(MODEL_STACK_FILE);
  return stackConfigSchema.parse({ ...example, ports, probes: { ...example.probes, rate: probeRate } });
}

export async function runModelRolloutDemo(o: ModelDemoOptions, events: ModelDemoEvents = {}): Promise<ModelDemoResult> {
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'fledge-model-demo-'));
  const rolloutsFile = join(stateDir, 'rollouts.yaml');
  const config = modelDemoStackConfig(o.ports, o.probeRate);
  const policy = modelDemoPolicy();
  const stack = new LocalStack(config, { stateDir, controller: { rolloutsFile, timeScale: o.timeScale } });
  const claims = stack.portClaims().map((c) => ({ ...c, setting: o.portFlags?.[c.setting.replace(/^ports\./, '') as keyof StackPorts] ?? c.setting }));
  const problems = await preflight(claims, { envoy: true, prometheus: true, redis: true });
  if (problems.length) throw new PreflightError(problems);

  const started: ModelRolloutPlan[] = [];
  const writeRollouts = () => writeAtomically(rolloutsFile, toYaml({ policies: [MODEL_POLICY_FILE], rollouts: started.map(({ name, service, candidate, stable }) => ({ name, service, candidate, stable, policy: MODEL_POLICY_NAME })) }));
  writeRollouts();
  let succeeded = false;
  try {
    await stack.start((c) => events.componentUp?.(c));
    o.signal?.throwIfAborted();
    const crashed = stack.firstExit().then((c) => {
      throw new Error(`${c.name} exited during the demo; its log is in ${stateDir}`);
    });
    crashed.catch(() => undefined); // the stack's own stop at the end makes every component exit
    const budgetMs = (totalPauseMs(policy) / o.timeScale) * 2 + 120_000;
    started.push(...MODEL_DEMO_ROLLOUTS);
    writeRollouts();
    for (const plan of MODEL_DEMO_ROLLOUTS) {
      o.logger.info({ rollout: plan.name, stable: plan.stable, candidate: plan.candidate }, 'rollout started');
      events.rolloutStarted?.(plan);
    }
    const recorders = await Promise.race([Promise.all(MODEL_DEMO_ROLLOUTS.map((plan) => follow(plan, stack, o, events, budgetMs))), crashed]);
    const rollouts = MODEL_DEMO_ROLLOUTS.map((plan, i) => {
      const recorder = recorders[i]!;
      return summarizeRollout({ name: plan.name, policy, final: recorder.status, runs: recorder.analysisRuns(), evidence: recorder.evidenceStages(), lastStepIndex: recorder.lastStepIndex(), requests: 0, failedRequests: 0 });
    });
    succeeded = true;
    return { rollouts, stateDir, versions: describeVersions(config) };
  } catch (err) {
    throw new Error(`the real-model demo failed: ${(err as Error).message} (state and every component's log kept in ${stateDir})`, { cause: err });
  } finally {
    await stack.stop();
    if (succeeded && !o.stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
}

export function modelDemoPolicy(): Policy {
  const found = loadPolicyFiles([MODEL_POLICY_FILE], { includeDefault: false }).policies.get(MODEL_POLICY_NAME);
  if (!found) throw new Error(`${MODEL_POLICY_FILE} defines no policy named ${MODEL_POLICY_NAME}`);
  return found;
}

/** "v1: temperature default, system prompt default", one per version of the example stack. */
function describeVersions(config: StackConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [service, s] of Object.entries(config.services)) {
    for (const [version, spec] of Object.entries(s.versions)) {
      const m = spec.model;
      out[`${service}/${version}`] = m
        ? `${m.model}, temperature ${m.temperature ?? 0}, system prompt ${m.systemPrompt === undefined ? "fledge model's default" : JSON.stringify(m.systemPrompt)}`
        : 'simulated';
    }
  }
  return out;
}

async function follow(plan: ModelRolloutPlan, stack: LocalStack, o: ModelDemoOptions, events: ModelDemoEvents, budgetMs: number): Promise<RolloutRecorder> {
  const store = new LocalStateStore(stack.paths.stateDir);
  const recorder = new RolloutRecorder();
  const deadline = Date.now() + budgetMs;
  for (;;) {
    const stored = store.read(plan.name);
    if (stored.kind === 'ok') {
      if (recorder.observe(stored.status)) events.status?.(plan.name, stored.status);
      const s = stored.status;
      if (SETTLED.has(s.phase) || (s.phase === 'Paused' && s.pause?.reason !== 'step')) return recorder;
    }
    o.signal?.throwIfAborted();
    if (Date.now() > deadline) throw new Error(`rollout ${plan.name} did not settle within ${Math.round(budgetMs / 1000)} s; last status: ${JSON.stringify(recorder.status ?? null)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function totalPauseMs(policy: Policy): number {
  return policy.steps.reduce((sum, s) => sum + (s.kind === 'pause' ? (s.durationMs ?? 0) : 0), 0);
}
