/**
 * Two arms' rates (errors, hallucinations, refusals, golden failures) compared as the
 * difference of proportions θ = p_canary − p_stable, with anytime-valid bounds from the
 * normal-mixture test (confidence-sequence.ts). Inputs are plain counts, so Prometheus
 * counters (increase() over the stage) are all it needs; increase() extrapolates, so
 * counts may be fractional.
 *
 * Each claim uses the larger of two variances of p̂_canary − p̂_stable: the one at the
 * observed rates (Wald) and the one the counts would have if θ were exactly θ0 (the rates'
 * maximum-likelihood values under that constraint, as in Farrington–Manning). Rare events
 * make p̂ skewed, and each estimate alone fails on one side: with the observed rates, a
 * canary that happens to show few events early looks precise as well as good and is
 * called not-worse too often; with the constrained rates, one that happens to show many
 * is called worse too often (9% instead of at most 5% in an A/A bench run). The seeded simulations
 * in test/unit/evidence-stats.test.ts check both sides. Counts are shrunk by ½ event per
 * arm ((x + ½)/(n + 1)) so that zero events never reads as zero variance.
 *
 * The normal approximation makes the guarantee asymptotic; the minimum samples per arm and
 * the simulations (tests, bench/evidence-bench.ts) keep it honest at canary sizes.
 */
import { logMixtureStatistic } from './confidence-sequence.js';
import { verdictOf, type EvidenceVerdict } from './verdict.js';

export interface ArmCounts {
  /** Events (errors, hallucinations…): at most `trials`. */
  events: number;
  /** Evaluated samples (requests, judged answers…). */
  trials: number;
}

export interface ComparisonSettings {
  /** Tolerated excess of the canary over the stable (same units as the estimate). */
  margin: number;
  /** Each verdict is wrong with probability at most 1 − confidence. */
  confidence: number;
  /** Whether a higher value is worse (error rates) or a lower one (pass rates). */
  worse: 'higher' | 'lower';
  /** Fewer samples than this in either arm: undecided. */
  minSamples: number;
}

export interface ComparisonResult {
  verdict: EvidenceVerdict;
  /** canary − stable for rates; P(canary > stable) + ½ P(tie) for distributions. */
  estimate: number;
  /** Anytime-valid bounds for the same quantity, each side at the confidence. */
  interval: [number, number];
  n: { canary: number; stable: number };
  /** Why, in a sentence, for status messages. */
  reason: string;
}

/**
 * Mixture scales as multiples of the margin. The upper bound (a promotion) must resolve
 * differences of the margin's size; the lower bound (a rollback) is aimed at regressions
 * about twice the tolerance, which is what a rollback should catch fast.
 */
export const TAU_UPPER_PER_MARGIN = 1;
export const TAU_LOWER_PER_MARGIN = 2;

export function validateArm(arm: ArmCounts, name: string): string | undefined {
  if (!Number.isFinite(arm.events) || !Number.isFinite(arm.trials)) return `${name}: counts must be finite numbers (events ${arm.events}, trials ${arm.trials})`;
  if (arm.events < 0 || arm.trials < 0) return `${name}: counts must not be negative (events ${arm.events}, trials ${arm.trials})`;
  if (arm.events > arm.trials * (1 + 1e-9)) return `${name}: more events (${arm.events}) than trials (${arm.trials})`;
  return undefined;
}

export interface CompareOptions {
  /** Compute the interval (a root search per side); the verdict never needs it. Default true. */
  interval?: boolean;
}

export function compareProportions(canary: ArmCounts, stable: ArmCounts, settings: ComparisonSettings, options: CompareOptions = {}): ComparisonResult {
  return compareStratifiedProportions([{ canary, stable }], settings, options);
}

/** The two arms' counts over one period in which the split between them did not change (a stage). */
export interface Stratum {
  canary: ArmCounts;
  stable: ArmCounts;
}

/**
 * Several stages' counts compared at once, stratified by stage: each stage's difference
 * is weighted by n_canary·n_stable/(n_canary + n_stable) (the Mantel–Haenszel weight for
 * a risk difference), so evidence accumulates over the stages, while a rate that drifts
 * between stages (night and day traffic) cannot bias the comparison through the weights'
 * changing split (Simpson's paradox). Within a stage the weighted difference is a sum of
 * independent per-sample increments, which is what the mixture test needs. One stratum
 * is the plain difference of proportions.
 */
export function compareStratifiedProportions(strata: readonly Stratum[], settings: ComparisonSettings, options: CompareOptions = {}): ComparisonResult {
  checkSettings(settings);
  strata.forEach((stratum, i) => {
    const where = strata.length > 1 ? ` (stage ${i + 1})` : '';
    const problem = validateArm(stratum.canary, `canary${where}`) ?? validateArm(stratum.stable, `stable${where}`);
    if (problem) throw new RangeError(problem);
  });
  // Strata with an empty arm carry no comparison.
  const usable = strata.filter((s) => s.canary.trials > 0 && s.stable.trials > 0);
  const n = { canary: sum(strata.map((s) => s.canary.trials)), stable: sum(strata.map((s) => s.stable.trials)) };
  const weights = usable.map((s) => (s.canary.trials * s.stable.trials) / (s.canary.trials + s.stable.trials));
  const totalWeight = sum(weights);
  const estimate = usable.length ? sum(usable.map((s, i) => weights[i]! * (s.canary.events / s.canary.trials - s.stable.events / s.stable.trials))) / totalWeight : Number.NaN;
  if (Math.min(n.canary, n.stable) < settings.minSamples || !Number.isFinite(estimate)) {
    return { verdict: 'undecided', estimate, interval: [-1, 1], n, reason: `not enough samples: ${describeN(n)}, at least ${settings.minSamples} per arm needed` };
  }
  // "Lower is worse" is "higher is worse" for the complementary events (passes → failures):
  // work on the excess scale (positive = canary worse), report canary − stable.
  const flip = settings.worse === 'lower';
  const arms = flip ? usable.map((s) => ({ canary: complement(s.canary), stable: complement(s.stable) })) : usable;
  const excess = flip ? -estimate : estimate;
  const test = new ScoreTest(arms, weights, excess, 1 - settings.confidence);
  const tauLower = TAU_LOWER_PER_MARGIN * settings.margin;
  const tauUpper = TAU_UPPER_PER_MARGIN * settings.margin;
  // The verdict needs two tests only: "excess > 0" and "excess < margin".
  const belowMargin = test.claimsBelow(settings.margin, tauUpper);
  const estimateBeyondMargin = excess > settings.margin;
  const verdict = verdictOf({ belowMargin, estimateBeyondMargin, aboveZero: !belowMargin && estimateBeyondMargin && test.claimsAbove(0, tauLower) });
  let interval: [number, number] = [Number.NaN, Number.NaN];
  if (options.interval !== false) {
    const lo = test.lowerBound(tauLower);
    const hi = test.upperBound(tauUpper);
    interval = flip ? [-hi, -lo] : [lo, hi];
  }
  return { verdict, estimate, interval, n, reason: explain(verdict, settings, 'the rate') };
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function complement(arm: ArmCounts): ArmCounts {
  return { events: Math.max(0, arm.trials - arm.events), trials: arm.trials };
}

/** The mixture tests of θ = p_canary − p_stable (stratified) against any θ0, for one set of counts. */
class ScoreTest {
  private readonly target: number;
  private readonly totalWeight: number;
  private readonly observedVariances: number[];

  constructor(
    private readonly strata: readonly Stratum[],
    private readonly weights: readonly number[],
    private readonly estimate: number,
    alpha: number,
  ) {
    this.target = Math.log(1 / alpha);
    this.totalWeight = sum(weights);
    this.observedVariances = strata.map((s) => observedVariance(s.canary) / s.canary.trials + observedVariance(s.stable) / s.stable.trials);
  }

  /** Var(θ̂) under θ0: per stage the larger of the observed and the constrained variance. */
  private variance(theta0: number): number {
    let total = 0;
    this.strata.forEach((s, i) => {
      const v = Math.max(this.observedVariances[i]!, constrainedVariance(s.canary, s.stable, theta0));
      total += this.weights[i]! ** 2 * v;
    });
    return total / this.totalWeight ** 2;
  }

  /** log M − log(1/α) for the claim that θ lies on the far side of θ0 from the estimate. */
  private excess(theta0: number, tau: number): number {
    const information = 1 / this.variance(theta0);
    return logMixtureStatistic(Math.abs(this.estimate - theta0) * information, information, tau) - this.target;
  }

  claimsAbove(theta0: number, tau: number): boolean {
    return this.estimate > theta0 && this.excess(theta0, tau) >= 0;
  }

  claimsBelow(theta0: number, tau: number): boolean {
    return this.estimate < theta0 && this.excess(theta0, tau) >= 0;
  }

  /** The largest θ0 below the estimate not yet claimed to be below θ: the lower bound. */
  lowerBound(tau: number): number {
    return this.bound(tau, -1 + 1e-9, -1);
  }

  upperBound(tau: number): number {
    return this.bound(tau, 1 - 1e-9, 1);
  }

  /** Bisection between the estimate (never claimed) and the far end of θ's range. */
  private bound(tau: number, end: number, direction: -1 | 1): number {
    if (this.excess(end, tau) < 0) return direction;
    let near = this.estimate;
    let far = end;
    while (Math.abs(far - near) > 1e-7) {
      const mid = (near + far) / 2;
      if (this.excess(mid, tau) >= 0) far = mid;
      else near = mid;
    }
    return far;
  }
}

/** p(1 − p) at the observed rate, shrunk by half an event. */
function observedVariance(arm: ArmCounts): number {
  const p = (arm.events + 0.5) / (arm.trials + 1);
  return p * (1 - p);
}

/**
 * The variance of p̂_canary − p̂_stable if θ were exactly θ0: both rates at their
 * maximum-likelihood values under p_canary = p_stable + θ0, found by bisection on the
 * (decreasing) score of the stable's rate. Counts shrunk by ½ event keep it interior.
 */
export function constrainedVariance(canary: ArmCounts, stable: ArmCounts, theta0: number): number {
  const xs = stable.events + 0.5;
  const ns = stable.trials + 1;
  const xc = canary.events + 0.5;
  const nc = canary.trials + 1;
  const score = (p: number) => xs / p - (ns - xs) / (1 - p) + xc / (p + theta0) - (nc - xc) / (1 - p - theta0);
  let low = Math.max(0, -theta0);
  let high = Math.min(1, 1 - theta0);
  for (let i = 0; i < 60 && high - low > 1e-12; i++) {
    const mid = (low + high) / 2;
    if (score(mid) > 0) low = mid;
    else high = mid;
  }
  const ps = (low + high) / 2;
  const pc = ps + theta0;
  // A rate pinned at 0 or 1 by θ0 (|θ0| near 1) still gets the variance of half an event.
  const floor = (p: number, n: number) => Math.max(p * (1 - p), 0.5 / n);
  return floor(pc, nc) / canary.trials + floor(ps, ns) / stable.trials;
}

export function checkSettings(settings: ComparisonSettings): void {
  if (!(settings.margin > 0) || !Number.isFinite(settings.margin)) throw new RangeError(`margin must be a positive number, got ${settings.margin}`);
  if (!(settings.confidence > 0.5 && settings.confidence < 1)) throw new RangeError(`confidence must be in (0.5, 1), got ${settings.confidence}`);
  if (!(settings.minSamples >= 1)) throw new RangeError(`minSamples must be at least 1, got ${settings.minSamples}`);
}

export function describeN(n: { canary: number; stable: number }): string {
  return `n canary ${round(n.canary)}, stable ${round(n.stable)}`;
}

export function explain(verdict: EvidenceVerdict, settings: ComparisonSettings, quantity: string): string {
  const pct = `${Math.round(settings.confidence * 1000) / 10}%`;
  const direction = settings.worse === 'higher' ? 'above' : 'below';
  switch (verdict) {
    case 'not-worse':
      return `canary not worse than stable by ${settings.margin} or more (at ${pct})`;
    case 'worse':
      return `canary worse than stable (at ${pct}): ${quantity} is ${direction} the stable's by more than the margin ${settings.margin}`;
    case 'undecided':
      return `not decided yet at ${pct}: the interval still straddles the margin ${settings.margin}`;
  }
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
