/**
 * The verdict rule shared by every comparison, on the "excess" scale: how much worse the
 * canary is than the stable (positive = worse; 0 = no difference).
 *
 * - not-worse: "excess < margin" is claimed at the confidence. If the canary really is
 *   worse by the margin or more, this happens with probability at most α, at any look.
 * - worse: "excess > 0" is claimed at the confidence (the canary is worse than the stable)
 *   and the estimate is beyond the margin (the effect-size floor: a difference the policy
 *   tolerates never fails a canary, however significant). If the canary is no worse than
 *   the stable, this happens with probability at most α, at any look.
 * - undecided otherwise: more samples needed.
 */
export type EvidenceVerdict = 'worse' | 'not-worse' | 'undecided';

export interface Claims {
  /** The test claims excess < margin. */
  belowMargin: boolean;
  /** The test claims excess > 0. */
  aboveZero: boolean;
  /** The point estimate of the excess is above the margin. */
  estimateBeyondMargin: boolean;
}

export function verdictOf(claims: Claims): EvidenceVerdict {
  if (claims.belowMargin) return 'not-worse';
  if (claims.aboveZero && claims.estimateBeyondMargin) return 'worse';
  return 'undecided';
}
