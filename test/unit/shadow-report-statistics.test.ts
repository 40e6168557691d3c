// The shadow report's statistics against values computed independently: scipy 1.17.1's
// mannwhitneyu(x, y, method='asymptotic', use_continuity=True) and numpy 2.4's quantile.
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../sim/random.js';
import { wilsonInterval } from '../../common/wilson.js';
import { erfc, mannWhitneyU, normalUpperTail, proportionDifference, quantiles } from '../../cli/shadow-report/statistics.js';

describe('mannWhitneyU', () => {
  it.each([
    ['ties in both samples', [1, 2, 2, 3, 3, 3, 4, 5, 7, 9], [2, 3, 4, 4, 5, 6, 6, 8, 8, 10, 11], 29, 0.0706025043211743],
    ['a small shift', [19, 22, 16, 29, 24], [20, 11, 17, 12], 17, 0.11134688653314041],
    ['two samples apart', Array.from({ length: 30 }, (_, i) => 30 + i), Array.from({ length: 30 }, (_, i) => i), 900, 3.019859359162157e-11],
    ['nearly the same', [1, 1, 2, 2, 3], [1, 2, 2, 3, 3], 9, 0.5067287122720537],
  ])('%s: U and p as scipy', (_name, x, y, u, p) => {
    const result = mannWhitneyU(x, y);
    expect(result.u).toBe(u);
    expect(result.p).toBeGreaterThan(p * (1 - 1e-5));
    expect(result.p).toBeLessThan(p * (1 + 1e-5));
  });

  it('is symmetric in its samples and signs z by which one is larger', () => {
    const x = [5, 6, 7, 8, 9];
    const y = [1, 2, 3, 4, 6];
    expect(mannWhitneyU(x, y).p).toBeCloseTo(mannWhitneyU(y, x).p, 12);
    expect(mannWhitneyU(x, y).z).toBeGreaterThan(0);
    expect(mannWhitneyU(y, x).z).toBeLessThan(0);
    expect(mannWhitneyU(x, y).probabilityGreater).toBeCloseTo(0.94, 10);
  });

  it('two samples from one distribution, with heavy ties: false alarms at p<0.05 near 5% (calibrated, not anti-conservative)', () => {
    // Seeded, so the rate is the same on every run.
    const rand = seededRandom(7);
    // Length ratios of answers that mostly repeat exactly: most values tie at 1.
    const sample = () => Array.from({ length: 80 }, () => (rand() < 0.7 ? 1 : 0.9 + rand() * 0.2));
    const runs = 1000;
    let alarms = 0;
    for (let i = 0; i < runs; i++) if (mannWhitneyU(sample(), sample()).p < 0.05) alarms++;
    expect(alarms / runs).toBeGreaterThan(0.025);
    expect(alarms / runs).toBeLessThan(0.075);
  });

  it('all values tied: no evidence of a difference (p = 1), and empty samples are refused', () => {
    expect(mannWhitneyU([1, 1, 1], [1, 1]).p).toBe(1);
    expect(() => mannWhitneyU([], [1])).toThrow(/two non-empty samples/);
  });
});

describe('normal tail', () => {
  it('matches published values of the standard normal and erfc', () => {
    expect(normalUpperTail(1.959963985)).toBeCloseTo(0.025, 7);
    expect(normalUpperTail(0)).toBeCloseTo(0.5, 7);
    // Far tail keeps relative precision: P(Z > 6) = 9.8658765e-10.
    expect(normalUpperTail(6) / 9.8658765e-10).toBeCloseTo(1, 5);
    expect(erfc(-1) + erfc(1)).toBeCloseTo(2, 12);
    expect(erfc(0.5)).toBeCloseTo(0.4795001222, 7);
  });
});

describe('quantiles', () => {
  it('interpolate linearly as numpy.quantile', () => {
    const q = quantiles([3.1, 1.2, 8.4, 5.5, 2.2, 9.9, 4.0])!;
    expect(q.n).toBe(7);
    expect(q.p10).toBeCloseTo(1.8, 10);
    expect(q.p50).toBeCloseTo(4.0, 10);
    expect(q.p90).toBeCloseTo(9.0, 10);
    expect(q.p99).toBeCloseTo(9.81, 10);
    expect(quantiles([])).toBeUndefined();
  });
});

describe('proportionDifference', () => {
  it("matches Newcombe's (1998) worked example: 56/70 − 48/80 = 0.2000, 95% CI 0.0524 to 0.3339 (method 10)", () => {
    const rate = (k: number, n: number) => ({ rate: k / n, ci95: wilsonInterval(k, n) });
    const d = proportionDifference(rate(56, 70), rate(48, 80));
    expect(d.estimate).toBeCloseTo(0.2, 10);
    expect(d.ci95[0]).toBeCloseTo(0.0524, 3);
    expect(d.ci95[1]).toBeCloseTo(0.3339, 3);
  });
});
