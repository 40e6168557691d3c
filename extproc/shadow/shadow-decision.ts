import type { DecisionReason } from '../decision.js';
import type { ServiceRouting } from '../routing/state.js';

/** A user request chosen for shadowing: copies go to the canary (and, for `noise`, to the stable again). */
export interface ShadowTicket {
  service: string;
  /** The version that answers the user (the stable). */
  stable: string;
  candidate: string;
  candidateHash: string;
  requestId: string;
  noise: boolean;
  /** Set once the copies went out; a stable answer whose copies never did is not stored. */
  sent?: boolean;
}

/** Decisions that leave a user request where its routing put it (not a pin, not a failure). */
const USER_REASONS: ReadonlySet<DecisionReason> = new Set(['sticky', 'random', 'flag']);

/**
 * Whether this user request is copied to the candidate. Pure. Only requests the stable
 * answers under an ordinary decision qualify (not probes, copies, kill switches, errors),
 * only while the routing state has a shadow share, and only with a request id to pair by.
 */
export function shadowTicket(
  state: ServiceRouting | undefined,
  decision: { version: string | undefined; reason: DecisionReason },
  requestId: string | undefined,
  draw: () => number,
  noiseShare: number,
): ShadowTicket | undefined {
  if (!state?.canary || !state.shadowPercent || state.killed || !requestId) return undefined;
  if (decision.version !== state.stable || !USER_REASONS.has(decision.reason)) return undefined;
  if (draw() * 100 >= state.shadowPercent) return undefined;
  return {
    service: state.service,
    stable: state.stable,
    candidate: state.canary,
    candidateHash: state.rolloutHashes[state.canary] ?? state.canary,
    requestId,
    noise: draw() < noiseShare,
  };
}
