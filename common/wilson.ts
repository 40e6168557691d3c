/**
 * Wilson score interval for a proportion: successes out of n, at the normal quantile z
 * (1.96 for 95%). Unlike the plain ±z·sqrt(p(1-p)/n), it stays inside [0, 1] and is
 * usable for small n and for proportions near 0 or 1 (a golden accuracy of 100% on 20).
 */
export function wilsonInterval(successes: number, n: number, z = 1.96): [lo: number, hi: number] {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`wilsonInterval: n must be a positive integer, got ${n}`);
  if (successes < 0 || successes > n) throw new Error(`wilsonInterval: successes ${successes} outside [0, ${n}]`);
  const p = successes / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}
