/**
 * The evidence bench's own parts: its binomial draws have the right mean and spread (the
 * published figures rest on them), and its two stage rules do what the bench says.
 */
import { describe, expect, it } from 'vitest';
import { binomial, DEFAULT_SIM, runEvidenceRollout, runFixedRollout } from '../../bench/evidence-sim.js';
import { seededRandom } from '../../sim/random.js';

describe('binomial draws', () => {
  it.each([
    { n: 150, p: 0.005 }, // errors in one look at 5% weight: inversion
    { n: 3000, p: 0.1 }, // evaluated answers in one look: normal approximation
    { n: 40, p: 0.5 },
  ])('Binomial($n, $p): mean and variance within sampling error', ({ n, p }) => {
    const random = seededRandom(77);
    const draws = Array.from({ length: 20_000 }, () => binomial(random, n, p));
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const variance = draws.reduce((a, b) => a + (b - mean) ** 2, 0) / (draws.length - 1);
    const sd = Math.sqrt(n * p * (1 - p));
    expect(Math.abs(mean - n * p)).toBeLessThan((4 * sd) / Math.sqrt(draws.length));
    expect(variance / (n * p * (1 - p))).toBeGreaterThan(0.95);
    expect(variance / (n * p * (1 - p))).toBeLessThan(1.05);
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThanOrEqual(n);
  });
});

describe('simulated rollouts', () => {
  it('the fixed timer takes the default policy pauses: 40 minutes for a healthy candidate', () => {
    const outcome = runFixedRollout(seededRandom(1), { hallucination: 0.01, error: 0.001 }, { hallucination: 0.01, error: 0.001 }, DEFAULT_SIM);
    expect(outcome).toEqual({ result: 'promoted', seconds: 2400 });
  });

  it('the evidence rule rolls a clearly worse candidate back in its first stage', () => {
    const outcome = runEvidenceRollout(seededRandom(2), { hallucination: 0.3, error: 0.005 }, { hallucination: 0.05, error: 0.005 }, DEFAULT_SIM, { hardLimits: true, evidence: 'rollout' });
    expect(outcome.result).toBe('rolled-back');
    expect(outcome.seconds).toBeLessThanOrEqual(DEFAULT_SIM.stages[0]!.pauseSeconds);
    expect(outcome.reason).toContain('hallucination-rate');
  });

  it('the evidence rule pauses a candidate it cannot tell apart at its cap', () => {
    // An equal candidate, a 1-minute planned pause: the 3-minute cap holds ~90 evaluated canary
    // answers, far too few to resolve a 2-point margin.
    const sim = { ...DEFAULT_SIM, stages: [{ weight: 5, pauseSeconds: 60 }] };
    const outcome = runEvidenceRollout(seededRandom(3), { hallucination: 0.05, error: 0.005 }, { hallucination: 0.05, error: 0.005 }, sim, { hardLimits: false, evidence: 'stage' });
    expect(outcome).toMatchObject({ result: 'paused', seconds: 180 });
    expect(outcome.reason).toContain('not enough evidence');
  });
});
