/**
 * Anytime-valid one-sided confidence bounds for an asymptotically normal estimate, from
 * a normal-mixture sequential probability ratio test (mSPRT; Robbins 1970, Johari et al.
 * 2017, "Always valid inference").
 *
 * An estimate θ̂ with variance 1/I (I: the information, which grows with the samples)
 * gives, for a drift λ, the likelihood ratio exp(λ·s − λ²·I/2) with s = (θ̂ − θ0)·I.
 * Mixing λ over a half-normal of scale τ on the positive side gives the statistic
 *
 *   M(s, I) = 2 · (1 + τ²I)^(-1/2) · exp(s² / 2a) · Φ(s / √a),   a = I + 1/τ²,
 *
 * a nonnegative supermartingale whenever θ ≤ θ0, so by Ville's inequality it ever
 * reaches 1/α with probability at most α, however often it is looked at. "θ exceeds θ0"
 * is claimed when M ≥ 1/α, i.e. when s ≥ b(I) (the boundary below); inverting over θ0
 * gives the lower bound θ̂ − b(I)/I, valid at every look at once. The upper bound is the
 * mirror image. Each side holds with probability ≥ 1 − α; together they form a
 * (1 − 2α) two-sided confidence sequence.
 *
 * τ is the size of the differences the test is most sensitive to: the boundary is
 * tightest when θ̂ − θ0 ≈ τ, and loses only logarithmically for other sizes.
 */
import { logNormalCdf } from './normal.js';

/** log M(s, I) for the half-normal mixture of scale τ. */
export function logMixtureStatistic(s: number, information: number, tau: number): number {
  const a = information + 1 / (tau * tau);
  return Math.LN2 - 0.5 * Math.log1p(tau * tau * information) + (s * s) / (2 * a) + logNormalCdf(s / Math.sqrt(a));
}

/**
 * The smallest s ≥ 0 with M(s, I) ≥ 1/α: how many standardised units θ̂ must exceed θ0
 * by before the claim θ > θ0 is made. log M increases in s, so a bracketed Newton
 * iteration (bisection whenever a step leaves the bracket) finds it in a few steps.
 */
export function mixtureBoundary(information: number, alpha: number, tau: number): number {
  if (!(information > 0) || !Number.isFinite(information)) throw new RangeError(`information must be positive and finite, got ${information}`);
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
  if (!(tau > 0) || !Number.isFinite(tau)) throw new RangeError(`tau must be positive and finite, got ${tau}`);
  const target = Math.log(1 / alpha);
  const a = information + 1 / (tau * tau);
  const excess = (s: number) => logMixtureStatistic(s, information, tau) - target;
  let low = 0;
  let high = Math.sqrt(a);
  while (excess(high) < 0) high *= 2;
  let s = high;
  for (let i = 0; i < 200; i++) {
    const f = excess(s);
    if (Math.abs(f) < 1e-12) return s;
    if (f > 0) high = s;
    else low = s;
    if (high - low <= 1e-13 * high) break;
    // d/ds log M = s/a + φ(z)/(√a Φ(z)), z = s/√a; the ratio via logs stays finite.
    const z = s / Math.sqrt(a);
    const slope = s / a + Math.exp(-0.5 * z * z - 0.5 * Math.log(2 * Math.PI) - logNormalCdf(z)) / Math.sqrt(a);
    const next = s - f / slope;
    s = next > low && next < high ? next : (low + high) / 2;
  }
  return high;
}

export interface ConfidenceBounds {
  lower: number;
  upper: number;
}

export interface BoundOptions {
  /** Each bound fails (ever) with probability at most alpha. */
  alpha: number;
  /** Mixture scale for the lower bound (claims that θ is above a value). */
  tauLower: number;
  /** Mixture scale for the upper bound (claims that θ is below a value). */
  tauUpper: number;
}

/** Anytime-valid lower and upper bounds for θ from θ̂ and its variance. */
export function confidenceBounds(estimate: number, variance: number, options: BoundOptions): ConfidenceBounds {
  if (!(variance > 0) || !Number.isFinite(variance)) throw new RangeError(`variance must be positive and finite, got ${variance}`);
  const information = 1 / variance;
  return {
    lower: estimate - mixtureBoundary(information, options.alpha, options.tauLower) / information,
    upper: estimate + mixtureBoundary(information, options.alpha, options.tauUpper) / information,
  };
}
