/**
 * The rollout state machine: (policy, state, event) → (new state, effects). Pure: no clock,
 * no I/O. The caller (Kubernetes reconciler or local mode) applies the effects in order
 * (traffic first, then events) and persists the state.
 *
 * Rules:
 * - setWeight sets the canary weight and moves on in the same transition.
 * - pause {duration} waits (durations divided by timeScale); pause {} waits for promote/resume.
 * - analysis runs the step's AnalysisTemplates (measurements come in through `measured`).
 *   Successful → next step. Failed with action rollback → weight 0 and the candidate retired
 *   (retire-candidate: no flag, sticky bucket or header reaches it) in the same transition,
 *   RolledBack. Failed with action pause-for-review → AwaitingReview, weight kept.
 *   Inconclusive → Paused (never promoted). Error (consecutiveErrorLimit exceeded, e.g. the
 *   metrics backend is down) → Paused: unlike Argo, which aborts; an outage of the metrics
 *   backend says nothing about the model, and the canary's weight stays where it was.
 * - After the last step: Promoted (weight 100, the candidate becomes stable).
 * - Actions: promote skips the current step (from Paused/AwaitingReview it is the human
 *   go-ahead); abort → weight 0 + retire-candidate, RolledBack; pause/resume; resume after an inconclusive,
 *   errored or review pause re-runs the analysis; retry from RolledBack/Failed/Invalid
 *   starts again at step 0.
 * - Evidence stages (evidence-stage.ts: a timed pause followed by an analysis with compare
 *   metrics): the host looks at the evidence every look interval (`evidence` events). Every
 *   compared metric not worse → the pause ends now; one worse → its action at once; still
 *   undecided when the pause is over → the stage is extended, and at the cap Paused
 *   (not-enough-evidence; resume starts the stage's evidence again, promote skips it).
 * - A shadow step copies a share of the stable's requests to the candidate (set-mirror; the
 *   candidate serves no user). The copies go on through the analysis steps right after it,
 *   which judge the pairs (a shadow stage), and stop when a later step starts or traffic stops.
 * - Background analysis (the policy's `analysis`, Argo's canary.analysis) starts when the
 *   rollout reaches `startingStep` and is measured at each metric's interval while the
 *   rollout runs (Progressing, or paused by a step or a user), between step boundaries too.
 *   Its verdicts act at once, like a step analysis's: Failed with rollback → weight 0,
 *   RolledBack; pause-for-review → AwaitingReview; Inconclusive or Error → Paused. Resume
 *   or promote after such a stop starts a fresh background run. A run whose metrics all
 *   reached their count is done; the rollout goes on.
 * - With options.candidate (cluster mode), a step that raises the weight waits for an
 *   available candidate replica and pauses (candidate-unavailable) after
 *   availabilityTimeoutMs; a candidate that serves traffic and has no available replica left
 *   is a breach: weight 0, RolledBack.
 */
import { analysisVerdict, dueMetrics, isCompleted, nextRunWakeAt, recordMeasurements, scaled, startAnalysisRun, type AnalysisVerdict, type MetricMeasurement } from '../analysis/run.js';
import { describeStep, type Policy, type PolicyStep } from '../policy/policy.js';
import type { Metric } from '../policy/schema.js';
import type { EvidenceDecision } from '../analysis/evidence/evidence-decision.js';
import { stageEvidenceAction, summarise } from '../analysis/evidence/stage-rule.js';
import { candidateLost, DEFAULT_AVAILABILITY_TIMEOUT_MS, weightGate, type CandidateAvailability } from './candidate-gate.js';
import { evidenceStageAt, type EvidenceStage } from './evidence-stage.js';
import { ACTIVE_PHASES, TERMINAL_PHASES, type PauseReason, type RolloutState } from './rollout-state.js';

export type UserAction = 'promote' | 'abort' | 'pause' | 'resume' | 'retry';
export const USER_ACTIONS: readonly UserAction[] = ['promote', 'abort', 'pause', 'resume', 'retry'];

export type RolloutEvent =
  | { type: 'tick'; now: number }
  /** Measurements of the step's analysis and of the background analysis, taken together. */
  | { type: 'measured'; now: number; measurements: MetricMeasurement[]; background?: MetricMeasurement[] }
  /** One look at the current evidence stage's compare metrics. */
  | { type: 'evidence'; now: number; decisions: EvidenceDecision[] }
  | { type: 'action'; now: number; action: UserAction }
  /** The policy or the routing setup is unusable: stop, change no traffic. */
  | { type: 'invalid'; now: number; message: string }
  /** A failure outside analysis (e.g. traffic cannot be routed): stable takes all traffic. */
  | { type: 'fail'; now: number; message: string }
  /** Traffic flows but extproc decides none of it (silent fail-open): the analyses see no truth, so stop here. */
  | { type: 'no-decisions'; now: number; message: string };

export type RolloutEffect =
  | { type: 'set-weight'; weight: number }
  /** Mirror this share of traffic to the candidate (shadow steps; 0 stops mirroring). */
  | { type: 'set-mirror'; percent: number }
  /** The candidate is now the stable version. */
  | { type: 'promote-candidate' }
  /**
   * The candidate must not serve any request (rolled back, aborted, failed): it stops being
   * the routing state's canary, so flags, sticky buckets and header routes cannot reach it.
   * Always comes with set-weight 0; the next set-weight (retry, new revision) undoes it.
   */
  | { type: 'retire-candidate' }
  | { type: 'event'; severity: 'Normal' | 'Warning'; reason: string; message: string };

export interface MachineOptions {
  /** Divides every engine-timed duration: 60 makes a 10m pause last 10s (tests, demo). */
  timeScale?: number;
  /** The candidate's availability now; undefined = not tracked (always available). */
  candidate?: CandidateAvailability;
  /** How long a weight step waits for an available candidate (before timeScale; default 10m). */
  availabilityTimeoutMs?: number;
  /**
   * The shortest range of an evidence stage's count queries, in seconds (default 60): a few
   * Prometheus scrape intervals, so that increase() has samples to work with. Not
   * time-scaled: it is about the scrapes, not the policy. A stage younger than this counts
   * from before it began (the previous stage's traffic, or probes before the rollout).
   */
  evidenceMinWindowSeconds?: number;
}

export interface Transition {
  state: RolloutState;
  effects: RolloutEffect[];
}

/** A new rollout of `policy`, started at `now` and advanced as far as it can go. */
export function startRollout(policy: Policy, now: number, options: MachineOptions = {}): Transition {
  const fresh: RolloutState = { version: 1, policy: policy.name, phase: 'Progressing', stepIndex: 0, weight: 0, stepStartedAt: now, message: 'starting', updatedAt: now };
  return begin(policy, fresh, now, options, 'RolloutStarted', `rollout started with policy ${policy.name} (${policy.steps.length} steps)`);
}

/** A rollout that cannot start (bad policy, missing VirtualService...): no traffic change. */
export function invalidRollout(policyName: string, message: string, now: number): Transition {
  const state: RolloutState = { version: 1, policy: policyName, phase: 'Invalid', stepIndex: 0, weight: 0, stepStartedAt: now, message, updatedAt: now };
  return { state, effects: [event('Warning', 'Invalid', message)] };
}

export function transition(policy: Policy, state: RolloutState, ev: RolloutEvent, options: MachineOptions = {}): Transition {
  const effects: RolloutEffect[] = [];
  const next = (() => {
    switch (ev.type) {
      case 'tick': {
        const lost = ACTIVE_PHASES.includes(state.phase) ? candidateLost(state.weight, options.candidate) : undefined;
        if (lost) return stopTraffic(policy, state, ev.now, 'RolledBack', 'CandidateUnavailable', `${stepLabel(policy, state.stepIndex)}: ${lost}; all traffic returned to stable`, effects);
        return withBackground(policy, state.phase === 'Progressing' ? progress(policy, state, ev.now, options, effects) : state, ev.now, effects);
      }
      case 'measured':
        return withBackground(policy, onMeasured(policy, state, ev.now, ev.measurements, ev.background ?? [], options, effects), ev.now, effects);
      case 'evidence':
        return withBackground(policy, onEvidence(policy, state, ev.now, ev.decisions, options, effects), ev.now, effects);
      case 'action':
        return withBackground(policy, onAction(policy, state, ev.now, ev.action, options, effects), ev.now, effects);
      case 'invalid':
        if (TERMINAL_PHASES.includes(state.phase)) return state;
        effects.push(event('Warning', 'Invalid', ev.message));
        return { ...state, phase: 'Invalid' as const, pause: undefined, message: ev.message, updatedAt: ev.now };
      case 'fail':
        if (!ACTIVE_PHASES.includes(state.phase)) return state;
        return stopTraffic(policy, state, ev.now, 'Failed', 'Failed', ev.message, effects);
      case 'no-decisions':
        if (state.phase !== 'Progressing') return state;
        return pauseFor(state, 'no-decisions', ev.now, `${stepLabel(policy, state.stepIndex)}: ${ev.message}; weight kept at ${state.weight}%, resume once extproc decides again`, 'NoDecisions', effects);
    }
  })();
  return { state: next === state ? state : clean(next), effects };
}

/** When the caller should send the next tick (or take measurements), if it must. */
export function nextWakeAt(policy: Policy, state: RolloutState, options: MachineOptions = {}): number | undefined {
  const step = stepWakeAt(policy, state, options);
  const background = backgroundRunning(policy, state) ? nextRunWakeAt(policy.background!.analysis, state.background!, options) : undefined;
  if (step === undefined) return background;
  return background === undefined ? step : Math.min(step, background);
}

/** The background analysis's metrics to measure now; [] when none are due or it does not run. */
export function backgroundMeasurementsDue(policy: Policy, state: RolloutState, now: number, options: MachineOptions = {}): Metric[] {
  return backgroundRunning(policy, state) ? dueMetrics(policy.background!.analysis, state.background!, now, options) : [];
}

/** Whether the rollout is in a phase where background analysis measures. */
function backgroundMeasures(s: RolloutState): boolean {
  return s.phase === 'Progressing' || (s.phase === 'Paused' && (s.pause?.reason === 'step' || s.pause?.reason === 'user'));
}

function backgroundRunning(policy: Policy, s: RolloutState): boolean {
  return policy.background !== undefined && s.background !== undefined && !isCompleted(s.background.phase) && backgroundMeasures(s);
}

/** Starts the background run once the rollout has reached its startingStep and runs. */
function withBackground(policy: Policy, s: RolloutState, now: number, effects: RolloutEffect[]): RolloutState {
  const bg = policy.background;
  if (!bg || s.background || !backgroundMeasures(s) || s.stepIndex < bg.startingStep || s.stepIndex >= policy.steps.length) return s;
  effects.push(event('Normal', 'AnalysisStarted', `background analysis started at ${stepLabel(policy, s.stepIndex)} (${bg.analysis.metrics.map((m) => m.name).join(', ')})`));
  return { ...s, background: startAnalysisRun(bg.analysis, now) };
}

function stepWakeAt(policy: Policy, state: RolloutState, options: MachineOptions): number | undefined {
  if (state.phase !== 'Progressing') return undefined;
  const step = policy.steps[state.stepIndex];
  const stage = evidenceStageAt(policy, state.stepIndex);
  if (stage) return Math.min(nextLookAt(stage, state, options), stageEndsAt(stage, state, options));
  if (step?.kind === 'pause' && step.durationMs !== undefined) return state.stepStartedAt + scaled(step.durationMs, options);
  if (step?.kind === 'shadow') return state.stepStartedAt + scaled(step.durationMs, options);
  if (step?.kind === 'analysis' && state.analysis) return nextRunWakeAt(step.analysis, state.analysis, options);
  // Still Progressing on a weight step (or before the final 100%): it waits for the candidate.
  if (options.candidate && (step?.kind === 'setWeight' || state.stepIndex === policy.steps.length)) return state.stepStartedAt + availabilityTimeout(options);
  return undefined;
}

/** The evidence stage whose look is due now (the host then sends an `evidence` event), if any. */
export function evidenceLookDue(policy: Policy, state: RolloutState, now: number, options: MachineOptions = {}): (EvidenceStage & { elapsedMs: number }) | undefined {
  if (state.phase !== 'Progressing') return undefined;
  const stage = evidenceStageAt(policy, state.stepIndex);
  if (!stage || now < nextLookAt(stage, state, options)) return undefined;
  return { ...stage, elapsedMs: now - state.stepStartedAt };
}

/** The current stage's evidence, if it is this step's. */
function stageEvidence(state: RolloutState): RolloutState['evidence'] {
  return state.evidence?.stepIndex === state.stepIndex ? state.evidence : undefined;
}

function nextLookAt(stage: EvidenceStage, state: RolloutState, options: MachineOptions): number {
  const last = stageEvidence(state)?.lastLookAt ?? state.stepStartedAt;
  return last + scaled(stage.lookIntervalMs, options);
}

/** When the stage must be decided: the end of the planned pause, then the cap. */
function stageEndsAt(stage: EvidenceStage, state: RolloutState, options: MachineOptions): number {
  return state.stepStartedAt + scaled(stageEvidence(state)?.extended ? stage.capMs : stage.plannedMs, options);
}

/** The metrics to measure now, for the current analysis step; [] when none are due. */
export function measurementsDue(policy: Policy, state: RolloutState, now: number, options: MachineOptions = {}): Metric[] {
  if (state.phase !== 'Progressing' || !state.analysis) return [];
  const step = policy.steps[state.stepIndex];
  return step?.kind === 'analysis' ? dueMetrics(step.analysis, state.analysis, now, options) : [];
}

// ---------------------------------------------------------------------------------------

function begin(policy: Policy, s: RolloutState, now: number, options: MachineOptions, reason: string, message: string): Transition {
  const effects: RolloutEffect[] = [];
  effects.push(event('Normal', reason, message));
  const first = policy.steps[s.stepIndex];
  if (first?.kind === 'shadow') effects.push({ type: 'set-mirror', percent: first.percent });
  return { state: clean(withBackground(policy, progress(policy, s, now, options, effects), now, effects)), effects };
}

/** Runs steps until one has to wait. */
function progress(policy: Policy, start: RolloutState, now: number, options: MachineOptions, effects: RolloutEffect[]): RolloutState {
  let s = start;
  for (let guard = 0; guard <= policy.steps.length + 1 && s.phase === 'Progressing'; guard++) {
    const step = policy.steps[s.stepIndex];
    if (!step) {
      if (s.stepIndex === policy.steps.length) {
        const held = holdForCandidate(s, 100, now, options, effects, stepLabel(policy, s.stepIndex));
        return held ?? promoteFully(s, now, effects);
      }
      // The policy lost steps since this rollout counted them: never promote on that.
      const message = `step ${s.stepIndex + 1} is past the ${policy.steps.length} steps of policy ${policy.name}: the policy changed during the rollout; traffic left as it is (retry starts the rollout again)`;
      effects.push(event('Warning', 'Invalid', message));
      return { ...s, phase: 'Invalid', message, updatedAt: now };
    }
    const label = stepLabel(policy, s.stepIndex);
    switch (step.kind) {
      case 'setWeight': {
        const held = holdForCandidate(s, step.weight, now, options, effects, label);
        if (held) return held;
        s = setWeight(s, step.weight, effects, label);
        s = advance(policy, s, now, effects);
        continue;
      }
      case 'pause': {
        if (step.durationMs === undefined) {
          effects.push(event('Normal', 'Paused', `${label}: paused until promoted or resumed`));
          return { ...s, phase: 'Paused', pause: { reason: 'step', since: now }, message: `${label}: paused until promoted or resumed`, updatedAt: now };
        }
        const stage = evidenceStageAt(policy, s.stepIndex);
        if (stage) return holdEvidenceStage(stage, s, now, options, effects, label);
        const until = s.stepStartedAt + scaled(step.durationMs, options);
        if (now >= until) {
          s = advance(policy, s, now, effects);
          continue;
        }
        return withMessage(s, `${label}: waiting until ${new Date(until).toISOString()}`, now);
      }
      case 'shadow': {
        const until = s.stepStartedAt + scaled(step.durationMs, options);
        if (now >= until) {
          s = advance(policy, s, now, effects);
          continue;
        }
        return withMessage(s, `${label}: shadowing ${step.percent}% of the stable's requests until ${new Date(until).toISOString()}`, now);
      }
      case 'analysis': {
        if (!s.analysis) {
          effects.push(event('Normal', 'AnalysisStarted', `${label}: analysis started (${step.analysis.metrics.map((m) => m.name).join(', ')})`));
          s = { ...s, analysis: startAnalysisRun(step.analysis, now) };
        }
        return withMessage(s, `${label}: analysis running`, now);
      }
    }
  }
  return s;
}

function onMeasured(policy: Policy, before: RolloutState, now: number, measurements: MetricMeasurement[], background: MetricMeasurement[], options: MachineOptions, effects: RolloutEffect[]): RolloutState {
  // The background verdict comes first: a breach it found stops the rollout before a step passes.
  const s = background.length ? onBackgroundMeasured(policy, before, now, background, effects) : before;
  if (s.phase !== before.phase) return s;
  const step = policy.steps[s.stepIndex];
  // Stale results (the rollout moved on, was paused or aborted meanwhile) are dropped.
  if (s.phase !== 'Progressing' || step?.kind !== 'analysis' || !s.analysis) return s;
  const known = measurements.filter((m) => step.analysis.metrics.some((metric) => metric.name === m.metric));
  const run = recordMeasurements(step.analysis, s.analysis, known);
  const verdict = analysisVerdict(step.analysis, run);
  const label = stepLabel(policy, s.stepIndex);
  const withRun: RolloutState = { ...s, analysis: run, updatedAt: now };
  switch (verdict.kind) {
    case 'running':
      return withRun;
    case 'successful':
      effects.push(event('Normal', 'AnalysisSuccessful', `${label}: all metrics passed`));
      return progress(policy, advance(policy, withRun, now, effects), now, options, effects);
    default:
      return stopFor(policy, withRun, now, verdict, label, effects);
  }
}

/** An evidence stage before its data decided: extended past the planned pause, paused at the cap. */
function holdEvidenceStage(stage: EvidenceStage, s: RolloutState, now: number, options: MachineOptions, effects: RolloutEffect[], label: string): RolloutState {
  const evidence = stageEvidence(s) ?? { stepIndex: s.stepIndex, looks: 0, decisions: [] };
  const elapsed = now - s.stepStartedAt;
  const undecided = evidence.decisions.length ? evidence.decisions.map((d) => `${d.metric}: ${d.verdict} (${d.problem ? d.reason : summarise(d)})`).join('; ') : 'no look at the evidence yet';
  if (elapsed >= scaled(stage.capMs, options)) {
    const message = `${label}: not enough evidence after ${formatDuration(stage.capMs)} (${EVIDENCE_CAP_NOTE}): ${undecided}; weight kept at ${s.weight}%, resume to collect evidence again or promote to go on`;
    return pauseFor({ ...s, evidence }, 'not-enough-evidence', now, message, 'NotEnoughEvidence', effects);
  }
  if (elapsed >= scaled(stage.plannedMs, options)) {
    const extended = evidence.extended ? evidence : { ...evidence, extended: true };
    if (!evidence.extended) effects.push(event('Normal', 'StageExtended', `${label}: planned ${formatDuration(stage.plannedMs)} passed undecided (${undecided}); extended up to ${formatDuration(stage.capMs)}`));
    return withMessage({ ...s, evidence: extended }, `${label}: extended up to ${formatDuration(stage.capMs)}, collecting evidence (${evidence.looks} looks: ${undecided})`, now);
  }
  return withMessage(s.evidence === evidence ? s : { ...s, evidence }, `${label}: collecting evidence, planned until ${new Date(s.stepStartedAt + scaled(stage.plannedMs, options)).toISOString()} (${evidence.looks} looks: ${undecided})`, now);
}

const EVIDENCE_CAP_NOTE = 'the cap';

/** One look at the stage's compare metrics: end the stage, act on a worse metric, or go on. */
function onEvidence(policy: Policy, s: RolloutState, now: number, decisions: EvidenceDecision[], options: MachineOptions, effects: RolloutEffect[]): RolloutState {
  const stage = s.phase === 'Progressing' ? evidenceStageAt(policy, s.stepIndex) : undefined;
  if (!stage) return s; // stale: the stage ended, or the rollout stopped, meanwhile
  const previous = stageEvidence(s);
  const evidence = { ...(previous ?? { stepIndex: s.stepIndex, looks: 0 }), looks: (previous?.looks ?? 0) + 1, lastLookAt: now, decisions };
  const withLook: RolloutState = { ...s, evidence, updatedAt: now };
  const label = stepLabel(policy, s.stepIndex);
  const judged = decisions.flatMap((decision) => {
    const metric = stage.metrics.find((m) => m.name === decision.metric);
    return metric ? [{ decision, action: metric.action }] : [];
  });
  const elapsed = now - s.stepStartedAt;
  const action = stageEvidenceAction(judged, elapsed, scaled(stage.capMs, options));
  switch (action.kind) {
    case 'worse':
      if (action.action === 'rollback') return stopTraffic(policy, withLook, now, 'RolledBack', 'RolledBack', `${label}: ${action.message}; all traffic returned to stable`, effects);
      effects.push(event('Warning', 'AwaitingReview', `${label}: ${action.message}; weight kept at ${s.weight}%, promote to continue or abort to roll back`));
      return { ...withLook, phase: 'AwaitingReview', pause: undefined, message: `${label}: ${action.message}; awaiting review (promote or abort)` };
    case 'end-stage': {
      effects.push(event('Normal', 'StageDecided', `${label}: ended after ${formatDuration(elapsed * (options.timeScale ?? 1))} of ${formatDuration(stage.plannedMs)} planned: ${action.message}`));
      const ended = advance(policy, { ...withLook, evidence: { ...evidence, concluded: true } }, now, effects);
      return progress(policy, ended, now, options, effects);
    }
    case 'not-enough-evidence':
      return holdEvidenceStage(stage, withLook, now, options, effects, label);
    case 'continue':
      return withLook;
  }
}

function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60}m`;
  if (seconds >= 60) return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
  return `${seconds}s`;
}

function onBackgroundMeasured(policy: Policy, s: RolloutState, now: number, measurements: MetricMeasurement[], effects: RolloutEffect[]): RolloutState {
  // Stale results (the rollout stopped or was paused by a verdict meanwhile) are dropped.
  if (!backgroundRunning(policy, s)) return s;
  const { analysis } = policy.background!;
  const known = measurements.filter((m) => analysis.metrics.some((metric) => metric.name === m.metric));
  const run = recordMeasurements(analysis, s.background!, known);
  const verdict = analysisVerdict(analysis, run);
  const label = `${stepLabel(policy, s.stepIndex)}, background analysis ${analysis.templateNames.join(', ')}`;
  const withRun: RolloutState = { ...s, background: run, updatedAt: now };
  switch (verdict.kind) {
    case 'running':
      return withRun;
    case 'successful':
      effects.push(event('Normal', 'AnalysisSuccessful', `${label}: all metrics passed their count`));
      return withRun;
    default:
      return stopFor(policy, withRun, now, verdict, label, effects);
  }
}

/** What a finished, unsuccessful analysis (step or background) does to the rollout. */
function stopFor(policy: Policy, withRun: RolloutState, now: number, verdict: Exclude<AnalysisVerdict, { kind: 'running' | 'successful' }>, label: string, effects: RolloutEffect[]): RolloutState {
  const s = withRun;
  switch (verdict.kind) {
    case 'failed':
      if (verdict.action === 'rollback') {
        return stopTraffic(policy, withRun, now, 'RolledBack', 'RolledBack', `${label}: ${verdict.message}; all traffic returned to stable`, effects);
      }
      effects.push(event('Warning', 'AwaitingReview', `${label}: ${verdict.message}; weight kept at ${s.weight}%, promote to continue or abort to roll back`));
      return { ...withRun, phase: 'AwaitingReview', pause: undefined, message: `${label}: ${verdict.message}; awaiting review (promote or abort)` };
    case 'inconclusive':
      return pauseFor(withRun, 'inconclusive', now, `${label}: ${verdict.message}; paused (resume re-runs the analysis)`, 'AnalysisInconclusive', effects);
    case 'error':
      return pauseFor(withRun, 'analysis-error', now, `${label}: ${verdict.message}; paused (resume re-runs the analysis)`, 'AnalysisError', effects);
  }
}

function onAction(policy: Policy, s: RolloutState, now: number, action: UserAction, options: MachineOptions, effects: RolloutEffect[]): RolloutState {
  const ignore = () => {
    effects.push(event('Warning', 'ActionIgnored', `${action} has no effect while the rollout is ${s.phase}`));
    return s;
  };
  const label = stepLabel(policy, s.stepIndex);
  switch (action) {
    case 'promote': {
      if (!ACTIVE_PHASES.includes(s.phase)) return ignore();
      effects.push(event('Normal', 'Promoted', `${label}: step promoted by user`));
      const skipped = advance(policy, { ...withoutStoppedBackground(s), phase: 'Progressing', pause: undefined }, now, effects);
      return progress(policy, skipped, now, options, effects);
    }
    case 'abort':
      if (!ACTIVE_PHASES.includes(s.phase)) return ignore();
      return stopTraffic(policy, s, now, 'RolledBack', 'Aborted', `${label}: aborted by user; all traffic returned to stable`, effects);
    case 'pause':
      if (s.phase !== 'Progressing') return ignore();
      effects.push(event('Normal', 'Paused', `${label}: paused by user`));
      return { ...s, phase: 'Paused', pause: { reason: 'user', since: now, stepElapsedMs: now - s.stepStartedAt }, message: `${label}: paused by user`, updatedAt: now };
    case 'resume':
      return resume(policy, s, now, options, effects) ?? ignore();
    case 'retry': {
      if (!['RolledBack', 'Failed', 'Invalid'].includes(s.phase)) return ignore();
      const fresh: RolloutState = { ...s, phase: 'Progressing', stepIndex: 0, stepStartedAt: now, pause: undefined, analysis: undefined, background: undefined, evidence: undefined, lastAnalysis: s.analysis ?? s.lastAnalysis, updatedAt: now };
      const t = begin(policy, fresh, now, options, 'Retried', `rollout restarted at step 1 by user`);
      effects.push(...t.effects);
      return t.state;
    }
  }
}

function resume(policy: Policy, s: RolloutState, now: number, options: MachineOptions, effects: RolloutEffect[]): RolloutState | undefined {
  const label = stepLabel(policy, s.stepIndex);
  const rerunAnalysis = (why: string) => {
    effects.push(event('Normal', 'Resumed', `${label}: resumed by user; ${why}`));
    const again: RolloutState = { ...withoutStoppedBackground(s), phase: 'Progressing', pause: undefined, analysis: undefined, lastAnalysis: s.analysis ?? s.lastAnalysis, stepStartedAt: now };
    return progress(policy, again, now, options, effects);
  };
  if (s.phase === 'AwaitingReview') return rerunAnalysis('re-running the analysis');
  if (s.phase === 'Invalid') {
    const t = begin(policy, { ...s, phase: 'Progressing', pause: undefined }, now, options, 'Resumed', `${label}: resumed by user at the same step`);
    effects.push(...t.effects);
    return t.state;
  }
  if (s.phase !== 'Paused' || !s.pause) return undefined;
  const reason: PauseReason = s.pause.reason;
  switch (reason) {
    case 'step':
      effects.push(event('Normal', 'Resumed', `${label}: resumed by user`));
      return progress(policy, advance(policy, { ...s, phase: 'Progressing', pause: undefined }, now, effects), now, options, effects);
    case 'user': {
      effects.push(event('Normal', 'Resumed', `${label}: resumed by user`));
      // The step's clock continues from where the pause stopped it.
      const stepStartedAt = now - (s.pause.stepElapsedMs ?? 0);
      return progress(policy, { ...s, phase: 'Progressing', pause: undefined, stepStartedAt }, now, options, effects);
    }
    case 'inconclusive':
    case 'analysis-error':
    case 'no-decisions':
      return rerunAnalysis('re-running the analysis');
    case 'not-enough-evidence':
      effects.push(event('Normal', 'Resumed', `${label}: resumed by user; collecting evidence again`));
      return progress(policy, { ...s, phase: 'Progressing', pause: undefined, evidence: undefined, stepStartedAt: now }, now, options, effects);
    case 'candidate-unavailable':
      effects.push(event('Normal', 'Resumed', `${label}: resumed by user; waiting for the candidate again`));
      return progress(policy, { ...s, phase: 'Progressing', pause: undefined, stepStartedAt: now }, now, options, effects);
  }
}

/** The step's state while it waits for an available candidate (or the pause when it waited too long); undefined when the weight may be set. */
function holdForCandidate(s: RolloutState, weight: number, now: number, options: MachineOptions, effects: RolloutEffect[], label: string): RolloutState | undefined {
  const gate = weightGate({ target: weight, current: s.weight, candidate: options.candidate, waitedMs: now - s.stepStartedAt, timeoutMs: availabilityTimeout(options), configuredTimeoutMs: options.availabilityTimeoutMs ?? DEFAULT_AVAILABILITY_TIMEOUT_MS });
  switch (gate.kind) {
    case 'open':
      return undefined;
    case 'wait':
      return withMessage(s, `${label}: ${gate.message}`, now);
    case 'timed-out':
      return pauseFor(s, 'candidate-unavailable', now, `${label}: ${gate.message}`, 'CandidateUnavailable', effects);
  }
}

function availabilityTimeout(options: MachineOptions): number {
  return scaled(options.availabilityTimeoutMs ?? DEFAULT_AVAILABILITY_TIMEOUT_MS, options);
}

function stopTraffic(policy: Policy, s: RolloutState, now: number, phase: 'RolledBack' | 'Failed', reason: string, message: string, effects: RolloutEffect[]): RolloutState {
  // Traffic first, in this same transition: nothing else has to happen before stable serves all.
  // Always emitted (idempotent), even at weight 0: the route may have drifted. The candidate
  // is retired too: weight 0 alone would leave it reachable by flag or header.
  effects.push({ type: 'set-weight', weight: 0 });
  effects.push({ type: 'retire-candidate' });
  if (inShadowStage(policy, s.stepIndex)) effects.push({ type: 'set-mirror', percent: 0 });
  effects.push(event('Warning', reason, message));
  return { ...s, phase, weight: 0, pause: undefined, message, updatedAt: now };
}

function promoteFully(s: RolloutState, now: number, effects: RolloutEffect[]): RolloutState {
  if (s.weight !== 100) effects.push({ type: 'set-weight', weight: 100 });
  effects.push({ type: 'promote-candidate' });
  const message = 'promoted: the candidate serves 100% and is now the stable version';
  effects.push(event('Normal', 'RolloutCompleted', message));
  return { ...s, phase: 'Promoted', weight: 100, pause: undefined, message, updatedAt: now };
}

function setWeight(s: RolloutState, weight: number, effects: RolloutEffect[], label: string): RolloutState {
  if (s.weight === weight) return s;
  effects.push({ type: 'set-weight', weight });
  effects.push(event('Normal', 'WeightChanged', `${label}: canary weight ${s.weight}% → ${weight}%`));
  return { ...s, weight };
}

/** A shadow step, or an analysis step right after one (it judges the copies, which go on meanwhile). */
export function inShadowStage(policy: Policy, index: number): boolean {
  for (let i = index; i >= 0; i--) {
    const kind = policy.steps[i]?.kind;
    if (kind === 'shadow') return true;
    if (kind !== 'analysis') return false;
  }
  return false;
}

/** Leaves the current step: ends its shadow stage, files its analysis run, starts the clock of the next. */
function advance(policy: Policy, s: RolloutState, now: number, effects: RolloutEffect[]): RolloutState {
  if (inShadowStage(policy, s.stepIndex) && !inShadowStage(policy, s.stepIndex + 1)) effects.push({ type: 'set-mirror', percent: 0 });
  // A stage's evidence judges the analysis right after it; later steps start without it (kept as lastEvidence).
  const carried = s.evidence?.stepIndex === s.stepIndex;
  const evidence = carried ? s.evidence : undefined;
  const lastEvidence = !carried && s.evidence ? s.evidence : s.lastEvidence;
  const next: RolloutState = { ...s, stepIndex: s.stepIndex + 1, stepStartedAt: now, analysis: undefined, lastAnalysis: s.analysis ?? s.lastAnalysis, evidence, lastEvidence, updatedAt: now };
  const entering = policy.steps[next.stepIndex];
  if (entering?.kind === 'shadow') effects.push({ type: 'set-mirror', percent: entering.percent });
  return next;
}

/** A background run that stopped the rollout is replaced by a fresh one when the user lets it go on. */
function withoutStoppedBackground(s: RolloutState): RolloutState {
  return s.background && isCompleted(s.background.phase) && s.background.phase !== 'Successful' ? { ...s, background: undefined } : s;
}

function pauseFor(s: RolloutState, reason: PauseReason, now: number, message: string, eventReason: string, effects: RolloutEffect[]): RolloutState {
  effects.push(event('Warning', eventReason, message));
  return { ...s, phase: 'Paused', pause: { reason, since: now }, message, updatedAt: now };
}

function invalid(s: RolloutState, now: number, message: string, effects: RolloutEffect[]): RolloutState {
  effects.push(event('Warning', 'Invalid', message));
  return { ...s, phase: 'Invalid', message, updatedAt: now };
}

function withMessage(s: RolloutState, message: string, now: number): RolloutState {
  return s.message === message ? s : { ...s, message, updatedAt: now };
}

function stepLabel(policy: Policy, index: number): string {
  const step: PolicyStep | undefined = policy.steps[index];
  return step ? `step ${index + 1}/${policy.steps.length} (${describeStep(step)})` : `after step ${policy.steps.length}`;
}

function event(severity: 'Normal' | 'Warning', reason: string, message: string): RolloutEffect {
  return { type: 'event', severity, reason, message };
}

/** Drops undefined optional fields so the serialised status stays small and stable. */
function clean(s: RolloutState): RolloutState {
  const out = { ...s };
  for (const key of ['pause', 'analysis', 'lastAnalysis', 'background', 'evidence', 'lastEvidence'] as const) if (out[key] === undefined) delete out[key];
  return out;
}
