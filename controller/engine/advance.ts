/**
 * One reconcile of one rollout, for the Kubernetes reconciler and local mode alike:
 * tick the machine, take the measurements that are due (the step's and the background
 * analysis's, concurrently, one round), feed them
 * back, and say when to come back. The only I/O is the metrics provider; the caller applies
 * the effects and stores the state.
 */
import { resolveArgs, type HashContext } from '../analysis/args.js';
import type { MetricMeasurement } from '../analysis/run.js';
import { takeMeasurement, type ProviderFor } from '../analysis/take-measurement.js';
import type { Policy, ResolvedAnalysis } from '../policy/policy.js';
import type { Metric } from '../policy/schema.js';
import { lookAtEvidence, stageWindow } from '../analysis/evidence/look.js';
import { backgroundMeasurementsDue, evidenceLookDue, measurementsDue, nextWakeAt, transition, type MachineOptions, type RolloutEffect } from './rollout-machine.js';
import type { RolloutState } from './rollout-state.js';

export interface AdvanceInput {
  policy: Policy;
  state: RolloutState;
  /** Which series are the canary's and the stable version's (e.g. their rollout_hash labels). */
  hashes: HashContext;
  provider: ProviderFor;
  clock: () => number;
  options?: MachineOptions;
  signal?: AbortSignal;
}

export interface AdvanceResult {
  state: RolloutState;
  effects: RolloutEffect[];
  /** Epoch ms at which to reconcile again; undefined = only on an action or a change. */
  wakeAt?: number;
}

export async function advanceRollout(input: AdvanceInput): Promise<AdvanceResult> {
  const { policy, options = {} } = input;
  const effects: RolloutEffect[] = [];
  let now = input.clock();
  let { state } = input;
  const ticked = transition(policy, state, { type: 'tick', now }, options);
  state = ticked.state;
  effects.push(...ticked.effects);

  // An evidence stage's look: both arms' counts since the stage began (real time, unscaled).
  const look = evidenceLookDue(policy, state, now, options);
  if (look) {
    const args = resolveArgs(look.analysis.args, input.hashes);
    const window = stageWindow(look.elapsedMs, options.evidenceMinWindowSeconds);
    const decisions = await lookAtEvidence({ metrics: look.metrics, args, provider: input.provider, at: now, window, ...(input.signal ? { signal: input.signal } : {}) });
    now = input.clock();
    const looked = transition(policy, state, { type: 'evidence', now, decisions }, options);
    state = looked.state;
    effects.push(...looked.effects);
  }

  // One round: the step's due metrics and the background analysis's, measured together.
  const due = measurementsDue(policy, state, now, options);
  const backgroundDue = backgroundMeasurementsDue(policy, state, now, options);
  if (due.length || backgroundDue.length) {
    const step = policy.steps[state.stepIndex];
    if (due.length && step?.kind !== 'analysis') throw new Error('measurements are due outside an analysis step');
    // The step's compare metrics are judged by the decisions of the evidence stage before it, when that stage concluded.
    const concluded = state.evidence?.concluded && state.evidence.stepIndex === state.stepIndex - 1 ? state.evidence.decisions : [];
    const measure = (metrics: Metric[], analysis: ResolvedAnalysis, decided: typeof concluded): Promise<MetricMeasurement[]> => {
      const args = resolveArgs(analysis.args, input.hashes);
      return Promise.all(
        metrics.map(async (metric) => ({ metric: metric.name, measurement: await takeMeasurement(metric, args, input.provider, input.clock, input.signal, decided.find((d) => d.metric === metric.name)) })),
      );
    };
    const [round, background] = await Promise.all([
      due.length && step?.kind === 'analysis' ? measure(due, step.analysis, concluded) : [],
      backgroundDue.length ? measure(backgroundDue, policy.background!.analysis, []) : [],
    ]);
    now = input.clock();
    const measured = transition(policy, state, { type: 'measured', now, measurements: round, ...(background.length ? { background } : {}) }, options);
    state = measured.state;
    effects.push(...measured.effects);
  }
  const wakeAt = nextWakeAt(policy, state, options);
  return wakeAt === undefined ? { state, effects } : { state, effects, wakeAt };
}
