/**
 * The evidence statistics against values computed independently here (numerical
 * integration of the mixture, pairwise counting for Mann–Whitney, published normal-table
 * values) and against their guarantees by seeded simulation (type-I error under a look
 * every few samples, monotonicity in n, symmetry).
 */
import { describe, expect, it } from 'vitest';
import { confidenceBounds, logMixtureStatistic, mixtureBoundary } from '../../controller/analysis/evidence/confidence-sequence.js';
import { compareDistributions, probabilityOfSuperiority, type Bucket } from '../../controller/analysis/evidence/distribution.js';
import { erfc, logNormalCdf, normalCdf } from '../../controller/analysis/evidence/normal.js';
import { compareProportions, TAU_LOWER_PER_MARGIN, TAU_UPPER_PER_MARGIN, type ArmCounts, type ComparisonSettings } from '../../controller/analysis/evidence/proportions.js';
import { seededRandom, type Random } from '../../sim/random.js';

const SETTINGS: ComparisonSettings = { margin: 0.02, confidence: 0.95, worse: 'higher', minSamples: 50 };

/** ∫₀^∞ exp(λs − λ²I/2) · (2/τ)·φ(λ/τ) dλ by composite Simpson's rule: the mixture, computed the slow way. */
function integratedMixture(s: number, information: number, tau: number): number {
  const a = information + 1 / (tau * tau);
  const top = Math.max(0, s / a) + 40 / Math.sqrt(a);
  const steps = 20_000;
  const h = top / steps;
  const f = (l: number) => Math.exp(l * s - (l * l * information) / 2) * (2 / tau) * (Math.exp(-(l * l) / (2 * tau * tau)) / Math.sqrt(2 * Math.PI));
  let sum = f(0) + f(top);
  for (let i = 1; i < steps; i++) sum += (i % 2 ? 4 : 2) * f(i * h);
  return (sum * h) / 3;
}

describe('normal distribution', () => {
  it('matches published table values', () => {
    // Abramowitz & Stegun table 26.1 and the usual quantiles.
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 14);
    expect(normalCdf(1.6448536269514722)).toBeCloseTo(0.95, 14);
    expect(normalCdf(-1)).toBeCloseTo(0.15865525393145705, 14);
    expect(normalCdf(0)).toBe(0.5);
    expect(normalCdf(3)).toBeCloseTo(0.9986501019683699, 14);
    expect(erfc(0.5)).toBeCloseTo(0.4795001221869535, 14);
    expect(erfc(3) / 2.209049699858544e-5).toBeCloseTo(1, 12);
    expect(normalCdf(-10) / 7.619853024160527e-24).toBeCloseTo(1, 10);
  });

  it('is continuous where the series hands over to the continued fraction', () => {
    const edge = 2 * Math.SQRT2; // erfc's argument 2
    const density = Math.exp(-(edge * edge) / 2) / Math.sqrt(2 * Math.PI);
    expect(Math.abs(normalCdf(edge + 1e-9) - normalCdf(edge - 1e-9) - 2e-9 * density)).toBeLessThan(1e-15);
    expect(Math.abs(logNormalCdf(-5 + 1e-9) - logNormalCdf(-5 - 1e-9))).toBeLessThan(1e-7);
  });

  it('log Φ stays finite far in the left tail', () => {
    // log Φ(z) ≈ −z²/2 − log(−z·√(2π)) for large −z.
    const z = -40;
    expect(logNormalCdf(z)).toBeCloseTo(-(z * z) / 2 - Math.log(-z * Math.sqrt(2 * Math.PI)), 2);
  });
});

describe('normal-mixture confidence sequence', () => {
  it('the closed-form statistic equals the mixture integral', () => {
    for (const [s, information, tau] of [
      [0, 100, 0.1],
      [3, 10, 0.5],
      [25, 400, 0.02],
      [-2, 50, 0.2],
      [120, 10_000, 0.02],
      [60, 2000, 0.04],
    ] as const) {
      const closed = Math.exp(logMixtureStatistic(s, information, tau));
      expect(closed / integratedMixture(s, information, tau)).toBeCloseTo(1, 8);
    }
  });

  it('the boundary is where the integrated mixture reaches 1/α', () => {
    for (const [information, alpha, tau] of [
      [100, 0.05, 0.1],
      [5000, 0.05, 0.02],
      [5000, 0.01, 0.04],
      [1e6, 0.1, 0.005],
    ] as const) {
      const b = mixtureBoundary(information, alpha, tau);
      expect(integratedMixture(b, information, tau) * alpha).toBeCloseTo(1, 7);
      expect(integratedMixture(b * 0.999, information, tau) * alpha).toBeLessThan(1);
    }
  });

  it('is wider than a fixed-sample interval and narrows as n grows', () => {
    let previous = Infinity;
    for (let n = 50; n <= 50_000; n *= 2) {
      const variance = 0.05 / n;
      const half = mixtureBoundary(1 / variance, 0.05, 0.02) * variance;
      expect(half).toBeLessThan(previous);
      // The one-sided fixed-n bound at 95% is 1.645 σ; looking at every n costs more.
      expect(half).toBeGreaterThan(1.6448536269514722 * Math.sqrt(variance));
      previous = half;
    }
  });

  it('is wider at a higher confidence', () => {
    const at = (alpha: number) => mixtureBoundary(1000, alpha, 0.05);
    expect(at(0.01)).toBeGreaterThan(at(0.05));
    expect(at(0.05)).toBeGreaterThan(at(0.2));
  });

  it('rejects nonsense parameters with the reason', () => {
    expect(() => mixtureBoundary(0, 0.05, 0.1)).toThrow(/information/);
    expect(() => mixtureBoundary(10, 1.5, 0.1)).toThrow(/alpha/);
    expect(() => confidenceBounds(0, Number.NaN, { alpha: 0.05, tauLower: 1, tauUpper: 1 })).toThrow(/variance/);
  });
});

describe('two proportions', () => {
  it('the interval ends where the mixture, with the larger of the observed and the constrained variance, reaches 1/α', () => {
    const canary = { events: 40, trials: 400 };
    const stable = { events: 380, trials: 7600 };
    const r = compareProportions(canary, stable, SETTINGS);
    expect(r.estimate).toBeCloseTo(0.1 - 0.05, 12);
    // Independently: the constrained maximum likelihood by a grid search (shrunk counts), then the integral.
    const variance = (theta0: number) => {
      const ll = (p: number) => 380.5 * Math.log(p) + 7220.5 * Math.log(1 - p) + 40.5 * Math.log(p + theta0) + 360.5 * Math.log(1 - p - theta0);
      let best = Math.max(0, -theta0) + 1e-9;
      for (let p = best; p < Math.min(1, 1 - theta0); p += 1e-5) if (ll(p) > ll(best)) best = p;
      for (let p = best - 1e-5; p < best + 1e-5; p += 1e-8) if (ll(p) > ll(best)) best = p;
      const constrained = ((best + theta0) * (1 - best - theta0)) / 400 + (best * (1 - best)) / 7600;
      const pc = 40.5 / 401;
      const ps = 380.5 / 7601;
      return Math.max(constrained, (pc * (1 - pc)) / 400 + (ps * (1 - ps)) / 7600);
    };
    for (const [end, tau] of [
      [r.interval[0], TAU_LOWER_PER_MARGIN * 0.02],
      [r.interval[1], TAU_UPPER_PER_MARGIN * 0.02],
    ] as const) {
      const v = variance(end);
      expect(integratedMixture(Math.abs(r.estimate - end) / v, 1 / v, tau) * 0.05).toBeCloseTo(1, 4);
    }
    expect(r.interval[0]).toBeGreaterThan(0);
    expect(r.verdict).toBe('worse');
    expect(r.n).toEqual({ canary: 400, stable: 7600 });
  });

  it('the verdict agrees with the interval', () => {
    for (const [c, s] of [
      [{ events: 40, trials: 400 }, { events: 380, trials: 7600 }],
      [{ events: 30, trials: 1000 }, { events: 300, trials: 10_000 }],
      [{ events: 12, trials: 300 }, { events: 140, trials: 5000 }],
    ] as const) {
      const r = compareProportions(c, s, SETTINGS);
      const expected = r.interval[1] < 0.02 ? 'not-worse' : r.interval[0] > 0 && r.estimate > 0.02 ? 'worse' : 'undecided';
      expect(r.verdict).toBe(expected);
    }
  });

  it('undecided below the minimum samples, whatever the counts', () => {
    const r = compareProportions({ events: 49, trials: 49 }, { events: 0, trials: 5000 }, SETTINGS);
    expect(r.verdict).toBe('undecided');
    expect(r.reason).toContain('at least 50 per arm');
  });

  it('zero events in both arms is not certainty: it takes enough samples to call not-worse', () => {
    expect(compareProportions({ events: 0, trials: 60 }, { events: 0, trials: 60 }, SETTINGS).verdict).toBe('undecided');
    expect(compareProportions({ events: 0, trials: 3000 }, { events: 0, trials: 3000 }, SETTINGS).verdict).toBe('not-worse');
  });

  it('monotone in n: the same rates with more samples narrow the interval and never undo a decision', () => {
    let width = Infinity;
    let decidedAt: number | undefined;
    for (let k = 1; k <= 60; k++) {
      const r = compareProportions({ events: 3 * k, trials: 100 * k }, { events: 30 * k, trials: 1000 * k }, SETTINGS);
      const w = r.interval[1] - r.interval[0];
      expect(w).toBeLessThan(width);
      width = w;
      if (r.verdict === 'not-worse') decidedAt ??= k;
      else expect(decidedAt).toBeUndefined();
    }
    expect(decidedAt).toBeDefined();
  });

  it('symmetric: swapping the arms and the direction, or events and non-events, gives the mirror image', () => {
    const canary = { events: 31, trials: 500 };
    const stable = { events: 170, trials: 4000 };
    const r = compareProportions(canary, stable, SETTINGS);
    const swapped = compareProportions(stable, canary, { ...SETTINGS, worse: 'lower' });
    const complement = (a: ArmCounts) => ({ events: a.trials - a.events, trials: a.trials });
    const flipped = compareProportions(complement(canary), complement(stable), { ...SETTINGS, worse: 'lower' });
    for (const other of [swapped, flipped]) {
      expect(other.verdict).toBe(r.verdict);
      expect(other.estimate).toBeCloseTo(-r.estimate, 12);
      expect(other.interval[0]).toBeCloseTo(-r.interval[1], 12);
      expect(other.interval[1]).toBeCloseTo(-r.interval[0], 12);
    }
  });

  it('the effect-size floor: a significant difference within the margin never fails the canary', () => {
    // 5.5% vs 5%: clearly above the stable with this much data, but within 2 points.
    const r = compareProportions({ events: 5500, trials: 100_000 }, { events: 50_000, trials: 1_000_000 }, SETTINGS);
    expect(r.interval[0]).toBeGreaterThan(0);
    expect(r.verdict).toBe('not-worse');
  });

  it('bad counts are refused with the reason', () => {
    expect(() => compareProportions({ events: 5, trials: 4 }, { events: 0, trials: 100 }, SETTINGS)).toThrow(/canary: more events \(5\) than trials \(4\)/);
    expect(() => compareProportions({ events: 1, trials: 100 }, { events: -1, trials: 100 }, SETTINGS)).toThrow(/stable: counts must not be negative/);
    expect(() => compareProportions({ events: 1, trials: 100 }, { events: 1, trials: 100 }, { ...SETTINGS, margin: 0 })).toThrow(/margin/);
  });
});

/** Binomial(n, p) as a sum of Bernoulli draws: slow, obviously right. */
function bernoulliSum(random: Random, n: number, p: number): number {
  let k = 0;
  for (let i = 0; i < n; i++) if (random() < p) k++;
  return k;
}

/**
 * Looks after every `perLook` canary samples (and the stable's share) until `maxCanary`,
 * stopping at the first decision; the share of runs that ended in each verdict.
 */
function simulateLooks(seed: number, runs: number, pStable: number, pCanary: number, canaryShare: number, perLook: number, maxCanary: number) {
  const random = seededRandom(seed);
  const stablePerLook = Math.round((perLook * (1 - canaryShare)) / canaryShare);
  const ended = { worse: 0, 'not-worse': 0, undecided: 0 };
  for (let run = 0; run < runs; run++) {
    const c = { events: 0, trials: 0 };
    const s = { events: 0, trials: 0 };
    let verdict: keyof typeof ended = 'undecided';
    while (c.trials < maxCanary && verdict === 'undecided') {
      c.events += bernoulliSum(random, perLook, pCanary);
      c.trials += perLook;
      s.events += bernoulliSum(random, stablePerLook, pStable);
      s.trials += stablePerLook;
      verdict = compareProportions(c, s, SETTINGS, { interval: false }).verdict;
    }
    ended[verdict]++;
  }
  const shares = { worse: ended.worse / runs, notWorse: ended['not-worse'] / runs, undecided: ended.undecided / runs };
  if (process.env.EVIDENCE_PRINT) process.stdout.write(`${JSON.stringify({ pStable, pCanary, canaryShare, ...shares })}\n`);
  return shares;
}

describe('error rates under repeated looks (seeded simulation)', () => {
  // The canary equals the stable: a look every 25 canary samples, up to 3,000.
  it.each([
    { p: 0.05, share: 0.05, decides: true },
    { p: 0.01, share: 0.5, decides: true },
    { p: 0.2, share: 0.25, decides: false },
    { p: 0.002, share: 0.1, decides: true },
  ])('A/A at p=$p, canary share $share: `worse` in at most 5% of runs', ({ p, share, decides }) => {
    const r = simulateLooks(1000 + Math.round(p * 1000), 400, p, p, share, 25, 3000);
    expect(r.worse).toBeLessThanOrEqual(0.05);
    // …and where 3,000 samples can resolve a 2-point margin, most equal canaries are called not-worse.
    if (decides) expect(r.notWorse).toBeGreaterThan(0.5);
  });

  it.each([
    { p: 0.05, share: 0.05 },
    { p: 0.2, share: 0.5 },
  ])('a canary exactly the margin worse (p=$p): `not-worse` in at most 5% of runs', ({ p, share }) => {
    const r = simulateLooks(2000 + Math.round(p * 1000), 400, p, p + SETTINGS.margin, share, 25, 3000);
    expect(r.notWorse).toBeLessThanOrEqual(0.05);
  });

  it('a canary 5 points worse (5% → 10%) is called worse in nearly every run', () => {
    const r = simulateLooks(3000, 300, 0.05, 0.1, 0.05, 25, 3000);
    expect(r.worse).toBeGreaterThan(0.95);
  });
});

/** Expands buckets into observations (the bucket's index as value) for brute-force checks. */
function expand(buckets: readonly Bucket[]): number[] {
  const out: number[] = [];
  let previous = 0;
  buckets.forEach((b, i) => {
    for (let k = 0; k < b.count - previous; k++) out.push(i);
    previous = b.count;
  });
  return out;
}

const cumulative = (counts: number[], les: number[]): Bucket[] => {
  let total = 0;
  return counts.map((c, i) => ({ le: les[i]!, count: (total += c) }));
};

describe('distributions from histogram buckets', () => {
  const LES = [0.1, 0.25, 0.5, 1, 2.5, Number.POSITIVE_INFINITY];
  const canary = cumulative([3, 10, 14, 9, 4, 1], LES);
  const stable = cumulative([9, 15, 12, 5, 2, 0], LES);

  it('the effect equals U/(n·m) from midranks, the textbook Mann–Whitney with ties', () => {
    const y = expand(canary);
    const x = expand(stable);
    const all = [...y.map((v) => ({ v, canary: true })), ...x.map((v) => ({ v, canary: false }))].sort((a, b) => a.v - b.v);
    const ranks = new Map<number, number>();
    for (let i = 0; i < all.length; ) {
      let j = i;
      while (j < all.length && all[j]!.v === all[i]!.v) j++;
      ranks.set(all[i]!.v, (i + 1 + j) / 2); // midrank of the tie group
      i = j;
    }
    const rankSum = y.reduce((s, v) => s + ranks.get(v)!, 0);
    const u = rankSum - (y.length * (y.length + 1)) / 2;
    const { estimate, n } = probabilityOfSuperiority(canary, stable);
    expect(n).toEqual({ canary: 41, stable: 43 });
    expect(estimate).toBeCloseTo(u / (y.length * x.length), 12);
  });

  it("the variance equals DeLong's, computed pair by pair", () => {
    const y = expand(canary);
    const x = expand(stable);
    const psi = (a: number, b: number) => (a > b ? 1 : a === b ? 0.5 : 0);
    const v10 = y.map((yi) => x.reduce((s, xj) => s + psi(yi, xj), 0) / x.length);
    const v01 = x.map((xj) => y.reduce((s, yi) => s + psi(yi, xj), 0) / y.length);
    const auc = v10.reduce((s, v) => s + v, 0) / y.length;
    const sampleVar = (vs: number[]) => vs.reduce((s, v) => s + (v - auc) ** 2, 0) / (vs.length - 1);
    const expected = sampleVar(v10) / y.length + sampleVar(v01) / x.length;
    expect(probabilityOfSuperiority(canary, stable).variance).toBeCloseTo(expected, 14);
  });

  it('a trivial shift is significant with enough data but does not fail the canary', () => {
    // Stable and canary with 1% of the mass moved one bucket up, a million observations each.
    const base = [200_000, 300_000, 250_000, 150_000, 80_000, 20_000];
    const shifted = [190_000, 300_000, 260_000, 150_000, 80_000, 20_000];
    const r = compareDistributions(cumulative(shifted, LES), cumulative(base, LES), { ...SETTINGS, margin: 0.05 });
    expect(r.interval[0]).toBeGreaterThan(0.5);
    expect(r.verdict).toBe('not-worse');
  });

  it('a clearly slower canary fails; a clearly faster one, with worse: lower, fails too', () => {
    const fast = cumulative([400, 300, 200, 80, 20, 0], LES);
    const slow = cumulative([50, 150, 300, 300, 150, 50], LES);
    expect(compareDistributions(slow, fast, { ...SETTINGS, margin: 0.05 }).verdict).toBe('worse');
    expect(compareDistributions(fast, slow, { ...SETTINGS, margin: 0.05 }).verdict).toBe('not-worse');
    expect(compareDistributions(fast, slow, { ...SETTINGS, margin: 0.05, worse: 'lower' }).verdict).toBe('worse');
  });

  it('A/A under repeated looks: `worse` in at most 5% of runs (seeded simulation)', () => {
    // Latency-like buckets; canary 5% of traffic; a look every 25 canary observations up to 3,000.
    const probabilities = [0.05, 0.2, 0.35, 0.25, 0.1, 0.05];
    const draw = (random: Random, counts: number[], n: number) => {
      for (let k = 0; k < n; k++) {
        let u = random();
        let j = 0;
        while (j < probabilities.length - 1 && u >= probabilities[j]!) u -= probabilities[j++]!;
        counts[j]!++;
      }
    };
    const random = seededRandom(4242);
    let worse = 0;
    const runs = 300;
    for (let run = 0; run < runs; run++) {
      const c = new Array<number>(LES.length).fill(0);
      const s = new Array<number>(LES.length).fill(0);
      for (let look = 0; look < 120; look++) {
        draw(random, c, 25);
        draw(random, s, 475);
        const verdict = compareDistributions(cumulative(c, LES), cumulative(s, LES), { ...SETTINGS, margin: 0.05 }).verdict;
        if (verdict === 'worse') worse++;
        if (verdict !== 'undecided') break;
      }
    }
    expect(worse / runs).toBeLessThanOrEqual(0.05);
  });

  it('refuses histograms that do not match or are not cumulative', () => {
    expect(() => probabilityOfSuperiority(canary, stable.slice(1))).toThrow(/different buckets/);
    const broken = canary.map((b, i) => (i === 2 ? { ...b, count: 1 } : b));
    expect(() => probabilityOfSuperiority(broken, stable)).toThrow(/canary: buckets are not cumulative/);
  });
});
