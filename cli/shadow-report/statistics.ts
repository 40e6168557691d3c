/**
 * The statistics of the shadow report, written for it: quantiles and the Mann-Whitney U
 * test (normal approximation, tie and continuity corrections, two-sided), which compares a
 * candidate feature's distribution with the stable's own noise floor without assuming a
 * shape (latency and length ratios are skewed, similarity piles up at 1). Pure.
 */

export interface Quantiles {
  n: number;
  p10: number;
  p50: number;
  p90: number;
  p99: number;
}

/** The q-quantile of sorted values by linear interpolation between order statistics (numpy's default). */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('quantile of no values');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} outside [0, 1]`);
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

export function quantiles(values: readonly number[]): Quantiles | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p10: quantileSorted(sorted, 0.1), p50: quantileSorted(sorted, 0.5), p90: quantileSorted(sorted, 0.9), p99: quantileSorted(sorted, 0.99) };
}

export interface MannWhitneyResult {
  /** U of the first sample: pairs (x, y) with x > y, ties counting one half. */
  u: number;
  /** U / (n1·n2): the chance a value of the first sample exceeds one of the second (0.5: no shift). */
  probabilityGreater: number;
  z: number;
  /** Two-sided p-value; 1 when every value ties (no evidence of any difference). */
  p: number;
}

/** Mann-Whitney U test of x against y, asymptotic (as scipy.stats.mannwhitneyu(method='asymptotic')). */
export function mannWhitneyU(x: readonly number[], y: readonly number[]): MannWhitneyResult {
  const n1 = x.length;
  const n2 = y.length;
  if (n1 === 0 || n2 === 0) throw new RangeError(`Mann-Whitney U needs two non-empty samples (got ${n1} and ${n2})`);
  const all = [...x.map((v) => ({ v, first: true })), ...y.map((v) => ({ v, first: false }))].sort((a, b) => a.v - b.v);
  const n = all.length;
  let rankSumX = 0;
  let tieTerm = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && all[j + 1]!.v === all[i]!.v) j++;
    const t = j - i + 1;
    const midRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (all[k]!.first) rankSumX += midRank;
    tieTerm += t * t * t - t;
    i = j + 1;
  }
  const u = rankSumX - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (!(variance > 0)) return { u, probabilityGreater: u / (n1 * n2), z: 0, p: 1 };
  // The larger U, moved half a step towards the mean: the continuity correction.
  const z = (Math.max(u, n1 * n2 - u) - mean - 0.5) / Math.sqrt(variance);
  return { u, probabilityGreater: u / (n1 * n2), z: u >= mean ? z : -z, p: Math.min(1, 2 * normalUpperTail(z)) };
}

/**
 * 95% interval for the difference of two proportions a − b from their Wilson intervals
 * (Newcombe's hybrid score method): unlike "the two intervals do not overlap", which is far
 * too strict, it is a test at about the 5% level (6 of 30 vs 0 of 30 is a difference).
 */
export function proportionDifference(a: { rate: number; ci95: [number, number] }, b: { rate: number; ci95: [number, number] }): { estimate: number; ci95: [number, number] } {
  const d = a.rate - b.rate;
  const lo = d - Math.sqrt((a.rate - a.ci95[0]) ** 2 + (b.ci95[1] - b.rate) ** 2);
  const hi = d + Math.sqrt((a.ci95[1] - a.rate) ** 2 + (b.rate - b.ci95[0]) ** 2);
  return { estimate: d, ci95: [lo, hi] };
}

/** P(Z > z) for a standard normal Z, accurate in the far tail (small p-values keep their digits). */
export function normalUpperTail(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2);
}

/** Complementary error function by a Chebyshev fit (fractional error < 1.2e-7 everywhere). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const poly =
    -z * z -
    1.26551223 +
    t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const r = t * Math.exp(poly);
  return x >= 0 ? r : 2 - r;
}
