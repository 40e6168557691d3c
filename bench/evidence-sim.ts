/**
 * The evidence bench's simulation: a service at a fixed request rate, split between stable
 * and canary by the stage's weight, a share of answers evaluated (sampled), and the two
 * rate metrics of the default policy (error rate on every request, hallucination rate on
 * evaluated answers). Counts are drawn per look, seeded, so every figure is reproducible.
 *
 * Two stage rules run on the same model:
 * - fixed: the default policy's pauses, then one measurement per stage against the seed's
 *   thresholds on the last 10 minutes (what fledge does today);
 * - evidence: each stage looks every `lookSeconds` at the counts of the rollout so far,
 *   stratified by stage (or, for comparison, at its own counts only), and follows stageEvidenceAction (end early, roll back, or extend up to `capFactor`
 *   times the planned pause, then pause for lack of evidence). The seed's thresholds stay
 *   hard limits, checked on the stage's counts when the comparisons have decided.
 */
import { evidenceDecision, type EvidenceDecision } from '../controller/analysis/evidence/evidence-decision.js';
import { stageEvidenceAction } from '../controller/analysis/evidence/stage-rule.js';
import type { Metric } from '../controller/policy/schema.js';
import type { Random } from '../sim/random.js';

export interface Rates {
  hallucination: number;
  error: number;
}

export interface SimSettings {
  rps: number;
  /** Share of answers evaluated (quality sampling). */
  sampling: number;
  /** The canary's share, when it is sampled more than the stable (default: `sampling`). */
  canarySampling?: number;
  /** Canary weight (%) and planned pause (s) per stage: the default policy's. */
  stages: readonly { weight: number; pauseSeconds: number }[];
  lookSeconds: number;
  capFactor: number;
  /** Hard limits (the seed's thresholds, as the default policy words them). */
  maxErrorRate: number;
  maxHallucinationRate: number;
  /** The compare margins of the two metrics. */
  errorMargin: number;
  hallucinationMargin: number;
}

export const DEFAULT_SIM: SimSettings = {
  rps: 100,
  sampling: 0.1,
  stages: [
    { weight: 5, pauseSeconds: 600 },
    { weight: 25, pauseSeconds: 900 },
    { weight: 50, pauseSeconds: 900 },
  ],
  lookSeconds: 30,
  capFactor: 3,
  maxErrorRate: 0.01,
  maxHallucinationRate: 0.05,
  errorMargin: 0.005,
  hallucinationMargin: 0.02,
};

/** The compare blocks the evidence rule uses (margins: half a point of errors, 2 points of hallucination). */
export function compareMetric(name: string, margin: number, confidence = 0.95): Metric {
  return {
    name,
    provider: { prometheus: { query: 'sum(rate(x_total[10m])) / sum(rate(y_total[10m]))' } },
    failureLimit: 0,
    inconclusiveLimit: 0,
    consecutiveErrorLimit: 4,
    action: 'rollback',
    compare: { baseline: 'stable', margin, confidence, worse: 'higher', minSamples: 50 },
  };
}


/** Binomial(n, p): inversion for small means, a rounded normal draw for large ones. */
export function binomial(random: Random, n: number, p: number): number {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  const mean = n * p;
  if (mean > 50 && n * (1 - p) > 50) {
    const u1 = 1 - random();
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * random());
    return Math.min(n, Math.max(0, Math.round(mean + z * Math.sqrt(mean * (1 - p)))));
  }
  const q = 1 - p;
  let pmf = q ** n;
  let cdf = pmf;
  const u = random();
  let k = 0;
  while (u > cdf && k < n) {
    pmf *= ((n - k) / (k + 1)) * (p / q);
    cdf += pmf;
    k++;
  }
  return k;
}

interface ArmTally {
  requests: number;
  errors: number;
  evaluated: number;
  hallucinations: number;
}

const emptyTally = (): ArmTally => ({ requests: 0, errors: 0, evaluated: 0, hallucinations: 0 });

/** One look's worth of traffic for one arm, added to the tally. */
function drawTraffic(random: Random, tally: ArmTally, requests: number, rates: Rates, sampling: number): void {
  const evaluated = binomial(random, requests, sampling);
  tally.requests += requests;
  tally.errors += binomial(random, requests, rates.error);
  tally.evaluated += evaluated;
  tally.hallucinations += binomial(random, evaluated, rates.hallucination);
}

// The interval is for people; the simulated stages only act on verdicts.
const VERDICT_ONLY = { interval: false };

/** Both metrics' decisions on the given stages' tallies (stratified by stage). */
function judge(stages: readonly { canary: ArmTally; stable: ArmTally }[], sim: SimSettings, metrics: { errors: boolean; hallucinations: boolean }): EvidenceDecision[] {
  const out: EvidenceDecision[] = [];
  if (metrics.errors) {
    const counts = stages.map(({ canary, stable }) => ({ canary: { events: canary.errors, trials: canary.requests }, stable: { events: stable.errors, trials: stable.requests } }));
    out.push(evidenceDecision(compareMetric('error-rate', sim.errorMargin), { kind: 'proportions', stages: counts }, VERDICT_ONLY));
  }
  if (metrics.hallucinations) {
    const counts = stages.map(({ canary, stable }) => ({ canary: { events: canary.hallucinations, trials: canary.evaluated }, stable: { events: stable.hallucinations, trials: stable.evaluated } }));
    out.push(evidenceDecision(compareMetric('hallucination-rate', sim.hallucinationMargin), { kind: 'proportions', stages: counts }, VERDICT_ONLY));
  }
  return out;
}

export type RolloutOutcome = { result: 'promoted' | 'rolled-back' | 'paused'; seconds: number; reason?: string };

export interface EvidenceRunOptions {
  /** Check the seed's thresholds when a stage's comparisons have decided (the default policy's hard limits). */
  hardLimits: boolean;
  /**
   * `rollout`: every stage so far, stratified by stage (evidence accumulates; each stage
   * still lasts at least one look); `stage`: the current stage's counts only.
   */
  evidence: 'rollout' | 'stage';
  /** Which metrics are compared with the stable (default both); the others are thresholds only. */
  compared?: { errors: boolean; hallucinations: boolean };
}

function total(stages: readonly { canary: ArmTally }[]): { canary: ArmTally } {
  const sumUp = emptyTally();
  for (const { canary } of stages) {
    sumUp.requests += canary.requests;
    sumUp.errors += canary.errors;
    sumUp.evaluated += canary.evaluated;
    sumUp.hallucinations += canary.hallucinations;
  }
  return { canary: sumUp };
}

/** A whole rollout under the evidence rule. */
export function runEvidenceRollout(random: Random, canary: Rates, stable: Rates, sim: SimSettings, options: EvidenceRunOptions): RolloutOutcome {
  let seconds = 0;
  const history: { canary: ArmTally; stable: ArmTally }[] = [];
  for (const stage of sim.stages) {
    const c = emptyTally();
    const s = emptyTally();
    history.push({ canary: c, stable: s });
    const capMs = stage.pauseSeconds * sim.capFactor * 1000;
    for (let elapsed = sim.lookSeconds; ; elapsed += sim.lookSeconds) {
      const perLook = sim.rps * sim.lookSeconds;
      const toCanary = Math.round((perLook * stage.weight) / 100);
      drawTraffic(random, c, toCanary, canary, sim.canarySampling ?? sim.sampling);
      drawTraffic(random, s, perLook - toCanary, stable, sim.sampling);
      const decisions = judge(options.evidence === 'rollout' ? history : [{ canary: c, stable: s }], sim, options.compared ?? { errors: true, hallucinations: true });
      const action = stageEvidenceAction(decisions.map((decision) => ({ decision, action: 'rollback' })), elapsed * 1000, capMs);
      if (action.kind === 'worse') return { result: 'rolled-back', seconds: seconds + elapsed, reason: action.message };
      if (action.kind === 'not-enough-evidence') return { result: 'paused', seconds: seconds + elapsed, reason: action.message };
      if (action.kind === 'end-stage') {
        const seen = options.evidence === 'rollout' ? total(history) : { canary: c };
        if (options.hardLimits && (seen.canary.errors / seen.canary.requests > sim.maxErrorRate || seen.canary.hallucinations / seen.canary.evaluated > sim.maxHallucinationRate)) {
          return { result: 'rolled-back', seconds: seconds + elapsed, reason: 'hard limit' };
        }
        seconds += elapsed;
        break;
      }
    }
  }
  return { result: 'promoted', seconds };
}

/** A whole rollout under the default policy's fixed pauses and thresholds. */
export function runFixedRollout(random: Random, canary: Rates, stable: Rates, sim: SimSettings): RolloutOutcome {
  let seconds = 0;
  for (const stage of sim.stages) {
    // The measurement's [10m] window: the last 600 s of the pause.
    const window = Math.min(600, stage.pauseSeconds);
    const c = emptyTally();
    const s = emptyTally();
    const toCanary = Math.round((sim.rps * window * stage.weight) / 100);
    drawTraffic(random, c, toCanary, canary, sim.sampling);
    drawTraffic(random, s, sim.rps * window - toCanary, stable, sim.sampling);
    seconds += stage.pauseSeconds;
    // extproc's estimated counter divided by all requests: hallucinations/p over requests.
    const hallucinationRate = c.hallucinations / sim.sampling / c.requests;
    if (c.errors / c.requests > sim.maxErrorRate || hallucinationRate > sim.maxHallucinationRate) return { result: 'rolled-back', seconds };
  }
  return { result: 'promoted', seconds };
}

/** Looks at one stage until the hallucination comparison decides; the canary's evaluated samples then. */
export function samplesToDecide(random: Random, canary: Rates, stable: Rates, weight: number, sim: SimSettings, maxSeconds: number): { verdict: string; samples: number; seconds: number } {
  const c = emptyTally();
  const s = emptyTally();
  for (let elapsed = sim.lookSeconds; elapsed <= maxSeconds; elapsed += sim.lookSeconds) {
    const total = sim.rps * sim.lookSeconds;
    const toCanary = Math.round((total * weight) / 100);
    drawTraffic(random, c, toCanary, canary, sim.sampling);
    drawTraffic(random, s, total - toCanary, stable, sim.sampling);
    const [decision] = judge([{ canary: c, stable: s }], sim, { errors: false, hallucinations: true });
    if (decision!.verdict !== 'undecided') return { verdict: decision!.verdict, samples: c.evaluated, seconds: elapsed };
  }
  return { verdict: 'undecided', samples: c.evaluated, seconds: maxSeconds };
}
