/**
 * Whether the candidate can take traffic: no weight step to a candidate without an available
 * replica (its pods may still be loading weights), a bounded wait for one, and a candidate
 * that loses every available replica while it serves treated as a breach. Pure.
 */

/** What the platform reports about the candidate's pods right now. */
export interface CandidateAvailability {
  /** Replicas of the candidate's current pod template that are available (ready for minReadySeconds). */
  available: number;
  /** Replicas the candidate asks for. */
  desired: number;
  /** False when the platform has no record of the candidate's pods yet (e.g. no ReplicaSet): the counts mean nothing. */
  observed: boolean;
}

/** How long a weight step waits for an available candidate before the rollout pauses (before timeScale). */
export const DEFAULT_AVAILABILITY_TIMEOUT_MS = 10 * 60_000;

export type WeightGate =
  | { kind: 'open' }
  /** Hold the step; say why. */
  | { kind: 'wait'; message: string }
  /** Waited too long: pause the rollout with this reason. */
  | { kind: 'timed-out'; message: string };

export interface WeightGateInput {
  /** The weight the step would set, and the weight set now. */
  target: number;
  current: number;
  /** undefined: availability is not tracked (local mode's simulated models are always available). */
  candidate: CandidateAvailability | undefined;
  /** How long the step has waited so far, and how long it may (both already time-scaled). */
  waitedMs: number;
  timeoutMs: number;
  /** The timeout as configured (before time scaling), for messages; default timeoutMs. */
  configuredTimeoutMs?: number;
}

export function weightGate(input: WeightGateInput): WeightGate {
  const { candidate } = input;
  // Lowering a weight (or setting 0) never needs a serving candidate.
  if (!candidate || input.target === 0 || input.target <= input.current) return { kind: 'open' };
  if (candidate.observed && candidate.available > 0) return { kind: 'open' };
  const shown = formatMs(input.configuredTimeoutMs ?? input.timeoutMs);
  const counts = candidate.observed ? `${candidate.available}/${candidate.desired} replicas available` : 'no ReplicaSet for its pod template yet';
  if (input.waitedMs >= input.timeoutMs) {
    return { kind: 'timed-out', message: `candidate has no available replica after ${shown} (${counts}); weight kept at ${input.current}%, resume to wait again` };
  }
  return { kind: 'wait', message: `waiting for an available candidate replica before setting ${input.target}% (${counts}; pauses after ${shown})` };
}

/** A breach message when a candidate that serves traffic has lost every available replica; undefined otherwise. */
export function candidateLost(weight: number, candidate: CandidateAvailability | undefined): string | undefined {
  // No record of the candidate's pods at all proves nothing about them.
  if (!candidate || weight === 0 || !candidate.observed || candidate.available > 0) return undefined;
  return `candidate lost its available replicas (0/${candidate.desired} available) while serving ${weight}%`;
}

function formatMs(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1_000) return `${Math.round(ms / 100) / 10}s`;
  return `${Math.round(ms)}ms`;
}
