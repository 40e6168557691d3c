/**
 * Latency, length and other histogram metrics: the two arms' distributions compared by the
 * Mann–Whitney statistic computed on histogram buckets. Every observation in a bucket ties
 * with the others in that bucket (and counts ½ against the other arm's), so the
 * resolution is the bucket boundaries.
 *
 * The effect measured is the probability of superiority A = P(canary > stable) +
 * ½ P(tie) (0.5: no difference; U = A · n_canary · n_stable). Its variance is DeLong's,
 * from the placement values of each bucket, which is valid away from the null too; the
 * bounds come from the same normal-mixture confidence sequence as the rates. The margin is
 * an effect-size floor on A: with margin 0.05 a canary is only failed if it is slower than
 * the stable in clearly more than 55% of pairs, so a trivial shift that large samples make
 * "significant" never fails a canary.
 */
import { confidenceBounds } from './confidence-sequence.js';
import { checkSettings, describeN, explain, type ComparisonResult, type ComparisonSettings } from './proportions.js';
import { verdictOf } from './verdict.js';

/** One cumulative histogram bucket, as Prometheus exposes it: observations ≤ le. */
export interface Bucket {
  le: number;
  count: number;
}

export const TAU_PER_MARGIN = 1;

/** Per-bucket counts (not cumulative), sorted by le; throws on an inconsistent histogram. */
export function bucketCounts(buckets: readonly Bucket[], arm: string): { le: number; count: number }[] {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const out: { le: number; count: number }[] = [];
  let previous = 0;
  for (const [i, bucket] of sorted.entries()) {
    if (Number.isNaN(bucket.le) || !Number.isFinite(bucket.count) || bucket.count < 0) throw new RangeError(`${arm}: bucket le=${bucket.le} has count ${bucket.count}`);
    if (i > 0 && bucket.le === sorted[i - 1]!.le) throw new RangeError(`${arm}: bucket le=${bucket.le} appears twice (aggregate with sum by (le))`);
    // increase() extrapolates each bucket on its own, so tiny inversions happen; a real one is an error.
    if (bucket.count < previous - 1e-6 * Math.max(1, previous)) throw new RangeError(`${arm}: buckets are not cumulative (le=${bucket.le} has ${bucket.count} < ${previous})`);
    const count = Math.max(0, bucket.count - previous);
    previous = Math.max(previous, bucket.count);
    out.push({ le: bucket.le, count });
  }
  return out;
}

export interface SuperiorityEstimate {
  /** P(canary > stable) + ½ P(tie). */
  estimate: number;
  variance: number;
  n: { canary: number; stable: number };
}

/** The Mann–Whitney effect and its DeLong variance from two bucketed histograms with the same boundaries. */
export function probabilityOfSuperiority(canary: readonly Bucket[], stable: readonly Bucket[]): SuperiorityEstimate {
  const b = bucketCounts(canary, 'canary');
  const a = bucketCounts(stable, 'stable');
  if (a.length !== b.length || a.some((bucket, i) => bucket.le !== b[i]!.le)) {
    throw new RangeError(`canary and stable histograms have different buckets (${b.map((x) => x.le).join(',')} vs ${a.map((x) => x.le).join(',')})`);
  }
  const nB = b.reduce((s, x) => s + x.count, 0);
  const nA = a.reduce((s, x) => s + x.count, 0);
  const n = { canary: nB, stable: nA };
  if (nA <= 0 || nB <= 0) return { estimate: Number.NaN, variance: Number.NaN, n };
  // Placements: a canary observation in bucket j beats the stable below j and ties half of
  // the stable in j; a stable observation in j is beaten by the canary above j and half in j.
  let stableBelow = 0;
  const canaryPlacement: number[] = [];
  for (let j = 0; j < a.length; j++) {
    canaryPlacement.push((stableBelow + a[j]!.count / 2) / nA);
    stableBelow += a[j]!.count;
  }
  let canaryAbove = 0;
  const stablePlacement: number[] = new Array<number>(a.length);
  for (let j = a.length - 1; j >= 0; j--) {
    stablePlacement[j] = (canaryAbove + b[j]!.count / 2) / nB;
    canaryAbove += b[j]!.count;
  }
  const estimate = b.reduce((s, x, j) => s + x.count * canaryPlacement[j]!, 0) / nB;
  const spread = (counts: { count: number }[], placements: number[], total: number) =>
    total > 1 ? counts.reduce((s, x, j) => s + x.count * (placements[j]! - estimate) ** 2, 0) / (total - 1) : 0.25;
  const variance = spread(b, canaryPlacement, nB) / nB + spread(a, stablePlacement, nA) / nA;
  return { estimate, variance, n };
}

/**
 * Compares the distributions. `worse: 'higher'` (latency, length) means a canary whose
 * values tend to be larger is worse; the estimate and interval are always P(canary > stable).
 */
export function compareDistributions(canary: readonly Bucket[], stable: readonly Bucket[], settings: ComparisonSettings): ComparisonResult {
  checkSettings(settings);
  if (settings.margin >= 0.5) throw new RangeError(`margin for a distribution comparison is on P(canary > stable) − 0.5 and must be below 0.5, got ${settings.margin}`);
  const { estimate, variance, n } = probabilityOfSuperiority(canary, stable);
  if (Math.min(n.canary, n.stable) < settings.minSamples || !Number.isFinite(estimate)) {
    return { verdict: 'undecided', estimate, interval: [0, 1], n, reason: `not enough samples: ${describeN(n)}, at least ${settings.minSamples} per arm needed` };
  }
  // All observations in one bucket for both arms: no spread to measure; the smallest
  // variance a discrete comparison of these sizes can have stands in for it.
  const floor = 1 / (4 * n.canary * n.stable);
  const sign = settings.worse === 'higher' ? 1 : -1;
  const tau = TAU_PER_MARGIN * settings.margin;
  const bounds = confidenceBounds(sign * (estimate - 0.5), Math.max(variance, floor), { alpha: 1 - settings.confidence, tauLower: tau, tauUpper: tau });
  const excess = sign * (estimate - 0.5);
  const verdict = verdictOf({ belowMargin: bounds.upper < settings.margin, aboveZero: bounds.lower > 0, estimateBeyondMargin: excess > settings.margin });
  const lo = 0.5 + (sign > 0 ? bounds.lower : -bounds.upper);
  const hi = 0.5 + (sign > 0 ? bounds.upper : -bounds.lower);
  return { verdict, estimate, interval: [Math.max(0, lo), Math.min(1, hi)], n, reason: explain(verdict, settings, 'P(canary > stable) − ½') };
}
