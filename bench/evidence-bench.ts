/**
 * make bench-evidence: the statistics of evidence-based stages, by simulation (pure,
 * seeded, no servers). Writes bench/results/evidence.json:
 * - aa_false_rollback_rate: candidate = stable (5% hallucination, 0.5% errors), whole
 *   rollouts under the evidence rule, a look every 30 s: the share rolled back.
 * - detect_samples_median / _p95: canary 10% vs stable 5% hallucination at 5% weight,
 *   looking every 30 s: the canary's evaluated samples when the test says `worse`.
 * - promote_seconds_evidence / promote_seconds_fixed: a healthy candidate (3%
 *   hallucination, 0.5% errors, as the stable), 100 rps, 10% sampling, the default policy's
 *   weights: median time to promotion under each rule, in the same run; a rollout that
 *   pauses for lack of evidence (or is rolled back) counts as never promoted. The details
 *   give the shares promoted, paused and rolled back, and two variants (a wider margin,
 *   the canary sampled at 50%).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { seededRandom } from '../sim/random.js';
import { DEFAULT_SIM, runEvidenceRollout, runFixedRollout, samplesToDecide, type Rates, type RolloutOutcome } from './evidence-sim.js';

const ROLLOUTS = Number(process.env.BENCH_ROLLOUTS ?? 2000);
const SEED = Number(process.env.BENCH_SEED ?? 11);
const root = resolve(import.meta.dirname, '..', '..');

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

const sortNumbers = (xs: number[]) => [...xs].sort((a, b) => a - b);
const share = (part: number, whole: number) => Math.round((part / whole) * 10000) / 10000;

/** Median of times to promotion, where rollouts that did not promote count as never (null if over half). */
function censoredMedian(seconds: readonly number[]): number | null {
  const m = quantile(sortNumbers([...seconds]), 0.5);
  return Number.isFinite(m) ? Math.round(m) : null;
}

interface Tally {
  promoted: number;
  'rolled-back': number;
  paused: number;
  seconds: number[];
}

function runMany(n: number, run: () => RolloutOutcome): Tally {
  const tally: Tally = { promoted: 0, 'rolled-back': 0, paused: 0, seconds: [] };
  for (let i = 0; i < n; i++) {
    const outcome = run();
    tally[outcome.result]++;
    tally.seconds.push(outcome.result === 'promoted' ? outcome.seconds : Number.POSITIVE_INFINITY);
  }
  return tally;
}

function summary(t: Tally) {
  return {
    promoted_rate: share(t.promoted, t.seconds.length),
    rolled_back_rate: share(t['rolled-back'], t.seconds.length),
    paused_rate: share(t.paused, t.seconds.length),
    promote_seconds_median: censoredMedian(t.seconds),
    promote_seconds_p90: (() => {
      const q = quantile(sortNumbers([...t.seconds]), 0.9);
      return Number.isFinite(q) ? Math.round(q) : null;
    })(),
  };
}

function main(): void {
  const started = Date.now();
  const random = seededRandom(SEED);
  const sim = DEFAULT_SIM;

  // A/A: candidate = stable; the comparisons alone (the rates sit at the hard limit).
  const same: Rates = { hallucination: 0.05, error: 0.005 };
  const aa = runMany(ROLLOUTS, () => runEvidenceRollout(random, same, same, sim, { hardLimits: false, evidence: 'rollout' }));
  const aaByStage = runMany(ROLLOUTS, () => runEvidenceRollout(random, same, same, sim, { hardLimits: false, evidence: 'stage' }));

  // Detection: 5% → 10% hallucination at 5% traffic.
  const worse = { hallucination: 0.1, error: 0.005 };
  const base = { hallucination: 0.05, error: 0.005 };
  const detected: number[] = [];
  let detectedWithinStageCap = 0;
  let wrongVerdicts = 0;
  const stageCapSeconds = sim.stages[0]!.pauseSeconds * sim.capFactor;
  for (let i = 0; i < ROLLOUTS; i++) {
    const r = samplesToDecide(random, worse, base, sim.stages[0]!.weight, sim, 6 * 3600);
    if (r.verdict === 'worse') {
      detected.push(r.samples);
      if (r.seconds <= stageCapSeconds) detectedWithinStageCap++;
    } else if (r.verdict === 'not-worse') wrongVerdicts++;
  }
  const detectedSorted = sortNumbers(detected);

  // Healthy candidate: the evidence rule and the fixed timer, same model, same run.
  const healthy: Rates = { hallucination: 0.03, error: 0.005 };
  const evidence = runMany(ROLLOUTS, () => runEvidenceRollout(random, healthy, healthy, sim, { hardLimits: true, evidence: 'rollout' }));
  const evidenceByStage = runMany(ROLLOUTS, () => runEvidenceRollout(random, healthy, healthy, sim, { hardLimits: true, evidence: 'stage' }));
  const fixed = runMany(ROLLOUTS, () => runFixedRollout(random, healthy, healthy, sim));
  // What moves the figure: a wider margin, or sampling the canary more than the stable.
  const variants = ROLLOUTS / 2;
  const wider = runMany(variants, () => runEvidenceRollout(random, healthy, healthy, { ...sim, hallucinationMargin: 0.03 }, { hardLimits: true, evidence: 'rollout' }));
  const sampledMore = runMany(variants, () => runEvidenceRollout(random, healthy, healthy, { ...sim, canarySampling: 0.5 }, { hardLimits: true, evidence: 'rollout' }));
  // The built-in default policy as the controllers run it: hallucinations compared (margin
  // 0.03) on the stage's own counts, errors by their threshold only.
  const defaultRule = { hardLimits: true, evidence: 'stage', compared: { errors: false, hallucinations: true } } as const;
  const defaultSim = { ...sim, hallucinationMargin: 0.03 };
  const defaultHealthy = runMany(variants, () => runEvidenceRollout(random, healthy, healthy, defaultSim, defaultRule));
  const defaultWorse = runMany(variants, () => runEvidenceRollout(random, worse, base, defaultSim, defaultRule));

  const result = {
    aa_false_rollback_rate: share(aa['rolled-back'], ROLLOUTS),
    detect_samples_median: Math.round(quantile(detectedSorted, 0.5)),
    detect_samples_p95: Math.round(quantile(detectedSorted, 0.95)),
    promote_seconds_evidence: censoredMedian(evidence.seconds),
    promote_seconds_fixed: censoredMedian(fixed.seconds),
    details: {
      command: 'make bench-evidence',
      rollouts_per_scenario: ROLLOUTS,
      seed: SEED,
      rps: sim.rps,
      sampling: sim.sampling,
      stages: sim.stages,
      look_seconds: sim.lookSeconds,
      stage_cap: `${sim.capFactor} x the planned pause, then Paused (not enough evidence)`,
      margins: { 'error-rate': sim.errorMargin, 'hallucination-rate': sim.hallucinationMargin },
      confidence: 0.95,
      evidence_rule: 'counts of the rollout so far, stratified by stage; a look every look_seconds; each stage at least one look',
      promote_seconds: 'median over all healthy rollouts, a rollout not promoted counting as never (null if more than half)',
      aa: { rates: same, rollout_evidence: summary(aa), stage_evidence: summary(aaByStage) },
      detect: {
        stable: base,
        canary: worse,
        weight: sim.stages[0]!.weight,
        detected_rate: share(detected.length, ROLLOUTS),
        detected_within_stage_cap_rate: share(detectedWithinStageCap, ROLLOUTS),
        wrong_not_worse_rate: share(wrongVerdicts, ROLLOUTS),
      },
      healthy: {
        rates: healthy,
        rollout_evidence: summary(evidence),
        stage_evidence: summary(evidenceByStage),
        fixed: summary(fixed),
        variants: {
          rollouts: variants,
          'hallucination margin 0.03': summary(wider),
          'canary sampled at 50%': summary(sampledMore),
        },
      },
      default_policy: {
        rule: 'the built-in default policy: hallucination-rate compared with the stable (margin 0.03) on the stage\'s own counts, the seed\'s thresholds as hard limits, errors by threshold only',
        rollouts: variants,
        // Candidate = stable at 3% hallucination: an A/A run below the seed's 5% limit (at 5% the hard limit alone fails half of them).
        healthy_aa_3pct: summary(defaultHealthy),
        canary_10pct_vs_stable_5pct: summary(defaultWorse),
      },
      wall_seconds: Math.round((Date.now() - started) / 100) / 10,
    },
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  // The real-stack run (bench/evidence-end-to-end.ts) is kept: this simulation does not redo it.
  const file = join(dir, 'evidence.json');
  const endToEnd = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { end_to_end?: unknown }).end_to_end : undefined;
  writeFileSync(file, `${JSON.stringify(endToEnd === undefined ? result : { ...result, end_to_end: endToEnd }, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

main();
