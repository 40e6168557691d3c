/**
 * The demo's summary of one rollout, built from what was recorded during the run. Pure:
 * recorded data in, the summary (the `fledge demo --json` document's entries) out.
 */
import type { AnalysisRunState, MetricRunState } from '../controller/analysis/run.js';
import type { RolloutStatus } from '../controller/kube/rollout-status.js';
import type { EvidenceDecision } from '../controller/analysis/evidence/evidence-decision.js';
import type { RecordedStage } from './rollout-demo-recorder.js';
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

/** One compared metric's last decision in an evidence stage. */
export interface EvidenceEntry {
  metric: string;
  verdict: EvidenceDecision['verdict'];
  /** How much worse the canary is than the stable (rates: difference of proportions), null when not measured. */
  estimate: number | null;
  interval: [number | null, number | null];
  margin: number;
  /** The samples behind the decision, per arm (requests or judged answers since the stage began). */
  n: { canary: number | null; stable: number | null };
}

/** A stage that ended on evidence (or ran out of it): how long it took and the samples each decision took. */
export interface EvidenceStageSummary {
  weight: number;
  /** not-worse: ended early (or on time) on evidence; worse: acted on at once; not-enough-evidence: paused at the cap; undecided: still running. */
  outcome: 'not-worse' | 'worse' | 'not-enough-evidence' | 'undecided';
  /** The stage's planned pause (policy time) and what it lasted (wall clock, to its last look). */
  plannedPause: string;
  seconds: number;
  looks: number;
  extended: boolean;
  decisions: EvidenceEntry[];
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
  /** The evidence stages, in order: each decision's estimate, interval and n per arm. */
  evidence: EvidenceStageSummary[];
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
  /** The evidence stages seen (RolloutRecorder.evidenceStages). */
  evidence?: RecordedStage[];
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
    evidence: (r.evidence ?? []).map((stage) => evidenceStage(stage, r)),
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
    const worse = summary.evidence.flatMap((stage) => (stage.outcome === 'worse' ? stage.decisions.filter((d) => d.verdict === 'worse') : []))[0];
    if (failed) {
      const { metric, value, threshold, n } = analysisEntry(failed, conditions);
      summary.breach = { metric, value, threshold, n };
    } else if (worse) {
      // Rolled back at a look of an evidence stage: the comparison with the stable was the breach.
      summary.breach = { metric: worse.metric, value: worse.estimate, threshold: `compare: stable, margin ${worse.margin}`, n: worse.n.canary };
    }
    if (r.faultAt !== undefined && r.trafficOffAt !== undefined) summary.rollbackSeconds = Math.round((r.trafficOffAt - r.faultAt) / 10) / 100;
  }
  return summary;
}

function evidenceStage(stage: RecordedStage, r: RecordedRollout): EvidenceStageSummary {
  const { evidence } = stage;
  const pause = r.policy.steps[evidence.stepIndex];
  const decisions = evidence.decisions.map(evidenceEntry);
  const final = r.final;
  const stillHere = final?.stepIndex === evidence.stepIndex;
  const outcome: EvidenceStageSummary['outcome'] = evidence.concluded
    ? 'not-worse'
    : stillHere && final?.phase === 'Paused' && final.pause?.reason === 'not-enough-evidence'
      ? 'not-enough-evidence'
      : stillHere && (final?.phase === 'RolledBack' || final?.phase === 'AwaitingReview') && decisions.some((d) => d.verdict === 'worse')
        ? 'worse'
        : 'undecided';
  const lastLookAt = evidence.lastLookAt ?? stage.stepStartedAt;
  return {
    weight: stage.weight,
    outcome,
    plannedPause: pause?.kind === 'pause' && pause.duration !== undefined ? String(pause.duration) : '?',
    seconds: Math.round((lastLookAt - stage.stepStartedAt) / 100) / 10,
    looks: evidence.looks,
    extended: evidence.extended === true,
    decisions,
  };
}

function evidenceEntry(d: EvidenceDecision): EvidenceEntry {
  const num = (x: number) => (Number.isFinite(x) ? x : null);
  return {
    metric: d.metric,
    verdict: d.verdict,
    estimate: num(d.estimate),
    interval: [num(d.interval[0]), num(d.interval[1])],
    margin: d.margin,
    n: { canary: Number.isFinite(d.n.canary) ? Math.round(d.n.canary) : null, stable: Number.isFinite(d.n.stable) ? Math.round(d.n.stable) : null },
  };
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
