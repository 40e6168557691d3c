/**
 * Two pairwise verdicts on one shadow pair, asked in both orders, into one preference. Pure.
 * A judge may favour the first (or second) answer shown whatever it says; asking with the
 * stable's answer first and then with the candidate's first cancels that: only a preference
 * that survives the swap counts as one. Anything else is a tie, and a pair whose two orders
 * disagree is flagged position-inconsistent, so the judge's position bias is visible.
 */
import type { PositionVerdict } from './pairwise-rubric.js';

/** The answer preferred: the stable's, the one in the candidate's seat (the candidate, or the stable's second answer for noise pairs), or neither. */
export type Preference = 'stable' | 'candidate' | 'tie';

export interface CombinedPreference {
  preferred: Preference;
  /** The two orders named different preferences (a winner in one, the other answer or a tie in the other). */
  inconsistent: boolean;
}

/** What a verdict shown as (A, B) prefers, given which answer was A. */
export function preferenceOf(verdict: PositionVerdict, stableShownFirst: boolean): Preference {
  if (verdict === 'tie') return 'tie';
  return (verdict === 'A') === stableShownFirst ? 'stable' : 'candidate';
}

/**
 * `stableFirst`: the verdict with the stable's answer as A and the candidate's as B;
 * `candidateFirst`: the verdict with the two swapped.
 */
export function combineOrders(stableFirst: PositionVerdict, candidateFirst: PositionVerdict): CombinedPreference {
  const first = preferenceOf(stableFirst, true);
  const second = preferenceOf(candidateFirst, false);
  if (first === second) return { preferred: first, inconsistent: false };
  return { preferred: 'tie', inconsistent: true };
}
