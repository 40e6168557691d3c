/**
 * The rollout's whole state as one serialisable value: what the controller writes to
 * `fledge.dev/status` and reads back after a restart. Times are absolute (epoch ms), so a
 * restarted controller resumes a pause with the time already spent, spent.
 */
import type { AnalysisRunState } from '../analysis/run.js';
import type { EvidenceDecision } from '../analysis/evidence/evidence-decision.js';

export const ROLLOUT_PHASES = ['Progressing', 'Paused', 'AwaitingReview', 'Promoted', 'RolledBack', 'Failed', 'Invalid'] as const;
export type RolloutPhase = (typeof ROLLOUT_PHASES)[number];

/** Why a rollout is Paused (AwaitingReview has its own phase). */
export type PauseReason = 'step' | 'user' | 'inconclusive' | 'analysis-error' | 'candidate-unavailable' | 'no-decisions' | 'not-enough-evidence';

/**
 * The evidence of an evidence stage (a timed pause followed by an analysis with compare
 * metrics): the looks taken so far and the last decision of each compared metric. Kept
 * into the analysis step that follows, whose compare metrics the stage's decisions judge.
 */
export interface StageEvidence {
  /** The pause step the evidence belongs to. */
  stepIndex: number;
  looks: number;
  lastLookAt?: number;
  decisions: EvidenceDecision[];
  /** The planned pause has passed undecided: the stage runs on, up to its cap. */
  extended?: boolean;
  /** Every compared metric was not worse: the stage ended on this evidence. */
  concluded?: boolean;
}

export interface RolloutState {
  version: 1;
  policy: string;
  phase: RolloutPhase;
  /** Index into the policy's steps; equals steps.length once all steps are done. */
  stepIndex: number;
  /** The canary's share of traffic, 0-100, as last set. */
  weight: number;
  /** When the current step began (epoch ms); a resumed user pause shifts it by the pause. */
  stepStartedAt: number;
  pause?: {
    reason: PauseReason;
    since: number;
    /** Time the current step had run when a user paused it; restored on resume. */
    stepElapsedMs?: number;
  };
  /** The current analysis step's run. */
  analysis?: AnalysisRunState;
  /** The previous run, kept for the status after its step ended. */
  lastAnalysis?: AnalysisRunState;
  /**
   * The background analysis run (the policy's `analysis`, Argo's canary.analysis): started
   * when the rollout reaches its startingStep, measured through every later step, kept for
   * the status once the rollout ends.
   */
  background?: AnalysisRunState;
  /** The current (or just ended) evidence stage's looks and decisions. */
  evidence?: StageEvidence;
  /** The previous stage's evidence once the next step no longer carries it (its deciding look, for the status). */
  lastEvidence?: StageEvidence;
  message: string;
  updatedAt: number;
}

export const TERMINAL_PHASES: readonly RolloutPhase[] = ['Promoted', 'RolledBack', 'Failed'];
export const ACTIVE_PHASES: readonly RolloutPhase[] = ['Progressing', 'Paused', 'AwaitingReview'];

/** JSON cannot hold NaN or ±Infinity, which Prometheus does return: keep them as Prometheus spells them. */
export function serializeRolloutState(state: RolloutState): string {
  return JSON.stringify(state, (_key, value: unknown) => {
    if (typeof value !== 'number' || Number.isFinite(value)) return value;
    return Number.isNaN(value) ? 'NaN' : value > 0 ? '+Inf' : '-Inf';
  });
}

export class RolloutStateError extends Error {
  override name = 'RolloutStateError';
}

export function parseRolloutState(text: string): RolloutState {
  let raw: unknown;
  try {
    raw = JSON.parse(text, (key, value: unknown) => {
      // Only numeric fields are ever written as these strings; messages are longer sentences.
      if (key !== 'message' && key !== 'threshold') {
        if (value === 'NaN') return Number.NaN;
        if (value === '+Inf') return Number.POSITIVE_INFINITY;
        if (value === '-Inf') return Number.NEGATIVE_INFINITY;
      }
      return value;
    });
  } catch (err) {
    throw new RolloutStateError(`status is not JSON: ${(err as Error).message}`);
  }
  const s = raw as Partial<RolloutState> | null;
  if (!s || typeof s !== 'object') throw new RolloutStateError('status is not an object');
  if (s.version !== 1) throw new RolloutStateError(`status version ${JSON.stringify(s.version)} is not supported`);
  if (!ROLLOUT_PHASES.includes(s.phase as RolloutPhase)) throw new RolloutStateError(`unknown phase ${JSON.stringify(s.phase)}`);
  for (const field of ['stepIndex', 'weight', 'stepStartedAt', 'updatedAt'] as const) {
    if (typeof s[field] !== 'number' || !Number.isFinite(s[field])) throw new RolloutStateError(`${field} must be a number`);
  }
  if (typeof s.policy !== 'string' || typeof s.message !== 'string') throw new RolloutStateError('policy and message must be strings');
  return s as RolloutState;
}
