/**
 * The demo's summary of one rollout, built from what was recorded during the run. Pure:
 * recorded data in, the summary (the `fledge demo --json` document's entries) out.
 */
import type { AnalysisRunState, MetricRunState } from '../controller/analysis/run.js';
import type { RolloutStatus } from '../controller/kube/rollout-status.js';
import { describeStep, type Policy } from '../controller/policy/policy.js';

export interface AnalysisEntry {
  metric: string;
  /** The canary's value; null when the query had no number (NaN, no data). */
  value: number | null;
  /** The condition the value was judged by, as the template writes it. */
  threshold: string;
  passed: boolean;
  /** The evaluated samples behind the value (answers judged, or requests); null when not counted. */
  n: number | null;
  /** The stable's value of the same query, when the condition compares with it (`stable[0]`). */
  stable?: number | null;
}

export interface RolloutSummary {
  name: string;
  outcome: 'promoted' | 'rolled-back' | 'unfinished';
  /** The policy steps taken, in order, each with what came of it. */
  steps: string[];
  /** Every metric of every analysis run, in the order they ran. */
  analyses: AnalysisEntry[];
  /** The same, by analysis step: the canary weight it judged and the run's phase. */
  analysisSteps: { weight: number; phase: string; analyses: AnalysisEntry[] }[];
  /** The background analysis run (the policy's `analysis`), as it ended: each metric's last measurement; passed = not Failed. */
  background?: { phase: string; analyses: AnalysisEntry[] };
  /** The metric that rolled the candidate back. */
  breach?: { metric: string; value: number | null; threshold: string; n: number | null };
  /** From breach onset (the fault injected) to no traffic weight left on the canary. */
  rollbackSeconds?: number;
  /** User-facing requests of this service that failed (5xx, no answer, or shed by the generator). */
  failedRequests: number;
  requests: number;
  /** The final phase and message, as the status file says. */
  phase: string;
  message: string;
}

export interface RecordedRollout {
  name: string;
  policy: Policy;
  final: RolloutStatus | undefined;
  runs: AnalysisRunState[];
  lastStepIndex: number;
  requests: number;
  failedRequests: number;
  /** Epoch ms of the fault injection and of the first moment the canary had no traffic weight. */
  faultAt?: number;
  trafficOffAt?: number;
}

export function summarizeRollout(r: RecordedRollout): RolloutSummary {
  const outcome = r.final?.phase === 'Promoted' ? 'promoted' : r.final?.phase === 'RolledBack' ? 'rolled-back' : 'unfinished';
  const conditions = metricConditions(r.policy);
  const weights = analysisWeights(r.policy);
  const analysisSteps = r.runs.map((run, i) => ({
    weight: weights[i] ?? 0,
    phase: run.phase,
    analyses: run.metrics.filter((m) => m.measurements.length > 0).map((m) => analysisEntry(m, conditions)),
  }));
  const summary: RolloutSummary = {
    name: r.name,
    outcome,
    steps: stepsTaken(r),
    analyses: analysisSteps.flatMap((a) => a.analyses),
    analysisSteps,
    failedRequests: r.failedRequests,
    requests: r.requests,
    phase: r.final?.phase ?? 'Pending',
    message: r.final?.message ?? 'no status written',
  };
  const background = r.final?.background;
  if (background) {
    summary.background = { phase: background.phase, analyses: background.metrics.filter((m) => m.measurements.length > 0).map((m) => ({ ...analysisEntry(m, conditions), passed: m.phase !== 'Failed' })) };
  }
  if (outcome === 'rolled-back') {
    // The run that stopped the rollout: the background run when it failed, else the last step's.
    const stopper = background?.phase === 'Failed' ? background : r.runs.at(-1);
    const failed = stopper?.metrics.find((m) => m.phase === 'Failed');
    if (failed) {
      const { metric, value, threshold, n } = analysisEntry(failed, conditions);
      summary.breach = { metric, value, threshold, n };
    }
    if (r.faultAt !== undefined && r.trafficOffAt !== undefined) summary.rollbackSeconds = Math.round((r.trafficOffAt - r.faultAt) / 10) / 100;
  }
  return summary;
}

function analysisEntry(m: MetricRunState, conditions: Map<string, string>): AnalysisEntry {
  const last = m.measurements.at(-1)!;
  const raw = last.value?.[0];
  const stable = last.stable?.[0];
  return {
    metric: m.name,
    value: raw === undefined || !Number.isFinite(raw) ? null : raw,
    threshold: last.threshold ?? conditions.get(m.name) ?? 'none',
    passed: m.phase === 'Successful',
    n: last.n === undefined || !Number.isFinite(last.n) ? null : Math.round(last.n),
    ...(last.stable === undefined ? {} : { stable: stable === undefined || !Number.isFinite(stable) ? null : stable }),
  };
}

/** For each analysis step in order, the canary weight set before it. */
function analysisWeights(policy: Policy): number[] {
  let weight = 0;
  const out: number[] = [];
  for (const step of policy.steps) {
    if (step.kind === 'setWeight') weight = step.weight;
    if (step.kind === 'analysis') out.push(weight);
  }
  return out;
}

function metricConditions(policy: Policy): Map<string, string> {
  const out = new Map<string, string>();
  const analyses = [...(policy.background ? [policy.background.analysis] : []), ...policy.steps.flatMap((step) => (step.kind === 'analysis' ? [step.analysis] : []))];
  for (const analysis of analyses) {
    for (const m of analysis.metrics) {
      const conditions = [m.successCondition && `success: ${m.successCondition}`, m.failureCondition && `failure: ${m.failureCondition}`].filter(Boolean);
      out.set(m.name, m.successCondition && !m.failureCondition ? m.successCondition : conditions.join('; '));
    }
  }
  return out;
}

/** "setWeight 5", "pause 10m", "analysis ai-quality-check: Successful", …, then the verdict. */
function stepsTaken(r: RecordedRollout): string[] {
  const last = Math.min(r.lastStepIndex, r.policy.steps.length - 1);
  const runs = [...r.runs];
  const steps = r.policy.steps.slice(0, last + 1).map((step) => {
    const text = describeStep(step);
    if (step.kind !== 'analysis') return text;
    const run = runs.shift();
    return run ? `${text}: ${run.phase}` : text;
  });
  if (r.final?.phase === 'Promoted') steps.push('promoted: the candidate is stable, 100%');
  else if (r.final?.phase === 'RolledBack') steps.push(`rolled back to 0%: ${r.final.message}`);
  else steps.push(`stopped in phase ${r.final?.phase ?? 'Pending'}: ${r.final?.message ?? ''}`);
  return steps;
}
