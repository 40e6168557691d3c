/**
 * The standard normal distribution's CDF, accurate to ~1e-14 relative, for the
 * confidence-sequence boundaries. Written here rather than pulled from a package: it is a
 * Maclaurin series for erf near 0 and Laplace's continued fraction for erfc in the tails.
 */

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** erf(x) for |x| < 2 by its Maclaurin series (terms shrink fast enough there). */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x; // (-1)^n x^(2n+1) / n!
  let sum = x;
  for (let n = 1; n < 100; n++) {
    term *= -x2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * sum;
}

/**
 * erfc(x) for x ≥ 2 by the continued fraction
 * erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated bottom-up.
 */
function erfcContinuedFraction(x: number): number {
  let tail = x;
  for (let k = 120; k >= 1; k--) tail = x + k / 2 / tail;
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * tail);
}

/** The complementary error function, for any real x. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2) return 1 - erfSeries(x);
  if (x > 27) return 0; // below the smallest double
  return erfcContinuedFraction(x);
}

/** P(Z ≤ z) for a standard normal Z. */
export function normalCdf(z: number): number {
  return z < 0 ? 0.5 * erfc(-z / Math.SQRT2) : 1 - 0.5 * erfc(z / Math.SQRT2);
}

/** log P(Z ≤ z), without underflow in the far left tail. */
export function logNormalCdf(z: number): number {
  if (z >= 0) return Math.log1p(-0.5 * erfc(z / Math.SQRT2));
  if (z > -5) return Math.log(normalCdf(z));
  // Left tail: Φ(z) = erfc(|z|/√2)/2; take the log of the continued fraction's parts.
  const x = -z / Math.SQRT2;
  let tail = x;
  for (let k = 120; k >= 1; k--) tail = x + k / 2 / tail;
  return -x * x - Math.log(Math.sqrt(Math.PI) * tail) - Math.LN2;
}
