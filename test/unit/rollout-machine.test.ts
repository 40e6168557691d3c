import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { MetricsProvider } from '../../controller/analysis/prometheus.js';
import { advanceRollout, type AdvanceResult } from '../../controller/engine/advance.js';
import { invalidRollout, startRollout, transition, type RolloutEffect } from '../../controller/engine/rollout-machine.js';
import { parseRolloutState, serializeRolloutState, type RolloutState } from '../../controller/engine/rollout-state.js';
import { loadDefaultPolicy, loadPolicyFiles, loadPolicyText, loadShadowPolicy } from '../../controller/policy/load.js';
import type { Policy } from '../../controller/policy/policy.js';

const seed = (name: string) => fileURLToPath(new URL(`../fixtures/seed/${name}`, import.meta.url));
const seedPolicy = loadPolicyFiles([seed('rollout.yaml'), seed('analysis-template.yaml')], { includeDefault: false }).policies.get('inference-service')!;
const defaultPolicy = loadDefaultPolicy();
/** The default policy's steps and thresholds without its comparisons with the stable: fixed pauses, as before evidence stages. */
const fixedDefault: Policy = {
  ...defaultPolicy,
  steps: defaultPolicy.steps.map((st) => (st.kind === 'analysis' ? { ...st, analysis: { ...st.analysis, metrics: st.analysis.metrics.map(({ compare: _c, ...m }) => m) } } : st)),
};
const hashes = { canaryHash: 'new', stableHash: 'old' };
const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 1);

/** Metric values per version; the series are told apart by the rollout_hash in the query. */
interface Values {
  errors: number;
  p95: number;
  quality: number;
  hallucination: number;
  cost: number;
  samples: number;
  /** fledge_guardrail_tripped for the revision: 1 while an extproc replica has tripped it. */
  tripped?: number;
  /** The shadow stage: share of answers not captured, failure/golden-loss excess over the noise floor, median length ratio. */
  shadowCaptureFailures: number;
  shadowFailures: number;
  shadowGoldenLost: number;
  shadowLengthRatio: number;
}
const healthy: Values = { errors: 0.001, p95: 1.0, quality: 0.93, hallucination: 0.01, cost: 0.002, samples: 500, shadowCaptureFailures: 0, shadowFailures: 0, shadowGoldenLost: 0, shadowLengthRatio: 1 };

function metrics(canary: Partial<Values> = {}, stable: Partial<Values> = {}): MetricsProvider & { queries: string[] } {
  const queries: string[] = [];
  const valuesOf = (query: string) => ({ ...healthy, ...(query.includes('"new"') ? canary : stable) });
  return {
    queries,
    async measure(query) {
      queries.push(query);
      const v = valuesOf(query);
      // Counts of judged answers: the hallucination rate of `samples` of them.
      if (query.includes('increase(fledge_quality_hallucination_verdicts_total')) return [v.hallucination * v.samples];
      if (query.startsWith('sum(increase(inference_shadow_captures_total') || query.startsWith('sum(increase(inference_shadow_pairs_total')) return [v.samples];
      if (query.includes('inference_shadow_captures_total')) return [v.shadowCaptureFailures];
      if (query.includes('feature="failed"')) return [v.shadowFailures];
      if (query.includes('feature="golden-correct"')) return [v.shadowGoldenLost];
      if (query.includes('inference_shadow_length_ratio_bucket')) return [v.shadowLengthRatio];
      if (query.includes('increase(inference_requests_total') || query.includes('fledge_quality_evaluated_total')) return [v.samples];
      if (query.includes('inference_errors_total')) return [v.errors];
      if (query.includes('inference_latency_seconds_bucket')) return [v.p95];
      if (query.includes('inference_quality_score')) return [v.quality];
      if (query.includes('inference_hallucination_total')) return [v.hallucination];
      if (query.includes('inference_cost_total')) return [v.cost];
      if (query.includes('fledge_guardrail_tripped')) return [v.tripped ?? 0];
      throw new Error(`unexpected query ${query}`);
    },
  };
}

/** Drives the rollout like a reconciler would, jumping the clock to each wake-up time. */
async function run(policy: Policy, provider: MetricsProvider, opts: { until?: (s: RolloutState) => boolean; timeScale?: number } = {}) {
  let now = T0;
  const effects: RolloutEffect[] = [];
  const started = startRollout(policy, now, { timeScale: opts.timeScale });
  effects.push(...started.effects);
  let state = started.state;
  let last: AdvanceResult | undefined;
  // The default policy's guardrail check wakes the rollout every 5 s: a 40-minute rollout is ~500 wake-ups.
  for (let i = 0; i < 2000 && state.phase === 'Progressing' && !opts.until?.(state); i++) {
    if (last?.wakeAt !== undefined) now = Math.max(now, last.wakeAt);
    last = await advanceRollout({ policy, state, hashes, provider, clock: () => now, options: { timeScale: opts.timeScale } });
    state = last.state;
    effects.push(...last.effects);
  }
  return { state, effects, now };
}

const weights = (effects: RolloutEffect[]) => effects.flatMap((e) => (e.type === 'set-weight' ? [e.weight] : []));
const reasons = (effects: RolloutEffect[]) => effects.flatMap((e) => (e.type === 'event' ? [e.reason] : []));

describe('a healthy canary', () => {
  it('is promoted through every step of the seed rollout, verbatim', async () => {
    const { state, effects, now } = await run(seedPolicy, metrics());
    expect(state.phase).toBe('Promoted');
    expect(weights(effects)).toEqual([5, 25, 50, 100]);
    expect(effects.filter((e) => e.type === 'promote-candidate')).toHaveLength(1);
    expect(reasons(effects).filter((r) => r === 'AnalysisSuccessful')).toHaveLength(3);
    // 10m + 15m + 15m of pauses; analysis with one measurement each takes no extra time.
    expect(now - T0).toBe(40 * MIN);
  });

  it('is promoted through the default policy, with baseline and sample queries', async () => {
    const provider = metrics();
    const { state } = await run(defaultPolicy, provider);
    expect(state.phase).toBe('Promoted');
    expect(provider.queries.some((q) => q.includes('rollout_hash="old"'))).toBe(true);
  });

  it('timeScale 60 makes the seed pauses last seconds', async () => {
    const { state, now } = await run(seedPolicy, metrics(), { timeScale: 60 });
    expect(state.phase).toBe('Promoted');
    expect(now - T0).toBe(40 * 1000);
  });
});

describe('the rollback table (default policy)', () => {
  const rows: [string, Partial<Values>, Partial<Values>, string][] = [
    ['error-rate', { errors: 0.02 }, {}, 'result[0] <= 0.01'],
    ['p95-latency', { p95: 1.5 }, { p95: 0.5 }, 'result[0] < 2.0 && result[0] <= 2 * stable[0]'],
    ['quality-score', { quality: 0.8 }, {}, 'result[0] >= 0.85'],
    ['hallucination-rate', { hallucination: 0.07 }, {}, 'result[0] <= 0.05'],
  ];
  for (const [metric, canary, stable, threshold] of rows) {
    // The thresholds are the default policy's hard limits, whatever its comparisons with the stable say.
    it(`${metric} breach rolls back: weight 0 in the same transition, naming metric, value and threshold`, async () => {
      const { state, effects } = await run(fixedDefault, metrics(canary, stable));
      expect(state.phase).toBe('RolledBack');
      expect(state.weight).toBe(0);
      expect(weights(effects)).toEqual([5, 0]);
      // The candidate is retired right after its weight 0: no flag or header reaches it.
      expect(effects.findIndex((e) => e.type === 'retire-candidate')).toBe(effects.findLastIndex((e) => e.type === 'set-weight') + 1);
      expect(state.message).toContain(`metric ${metric} failed`);
      expect(state.message).toContain(threshold);
      const value = Object.values(canary)[0]!;
      expect(state.message).toContain(`value ${value}`);
      expect(effects.at(-1)).toMatchObject({ type: 'event', severity: 'Warning', reason: 'RolledBack' });
    });
  }

  it('cost per request > 1.5x stable pauses for review with the weight kept; promote continues', async () => {
    const { state, effects, now } = await run(defaultPolicy, metrics({ cost: 0.004 }, { cost: 0.002 }));
    expect(state.phase).toBe('AwaitingReview');
    expect(state.weight).toBe(5);
    expect(weights(effects)).toEqual([5]);
    expect(state.message).toContain('metric cost-per-request failed: value 0.004 (stable 0.002)');
    const promoted = transition(defaultPolicy, state, { type: 'action', action: 'promote', now }, {});
    expect(promoted.state).toMatchObject({ phase: 'Progressing', stepIndex: 4, weight: 25 });
    expect(weights(promoted.effects)).toEqual([25]);
  });

  it('cost review then abort rolls back', async () => {
    const { state, now } = await run(defaultPolicy, metrics({ cost: 0.004 }, { cost: 0.002 }));
    const aborted = transition(defaultPolicy, state, { type: 'action', action: 'abort', now }, {});
    expect(aborted.state.phase).toBe('RolledBack');
    expect(weights(aborted.effects)).toEqual([0]);
  });
});

describe("the default policy's evidence stages", () => {
  it('a healthy canary ends each stage at its first look: promoted with a StageDecided Event per stage, long before the 40 minutes of pauses', async () => {
    const { state, effects, now } = await run(defaultPolicy, metrics());
    expect(state.phase).toBe('Promoted');
    expect(weights(effects)).toEqual([5, 25, 50, 100]);
    expect(reasons(effects).filter((r) => r === 'StageDecided')).toHaveLength(3);
    // A look every 30 s; each stage decided at its first.
    expect(now - T0).toBe(3 * 30_000);
    // The last stage's deciding look stays in the status once later steps no longer carry it.
    const lastPause = defaultPolicy.steps.map((st) => st.kind).lastIndexOf('pause');
    expect(state.evidence).toBeUndefined();
    expect(state.lastEvidence).toMatchObject({ stepIndex: lastPause, concluded: true, looks: 1 });
    expect(state.lastEvidence?.decisions.map((d) => [d.metric, d.verdict])).toEqual([['hallucination-rate', 'not-worse']]);
  });

  it('hallucinating 7% against the stable 1% (inside no margin, beyond the 3-point one) is rolled back at the first look of the first stage', async () => {
    const { state, effects, now } = await run(defaultPolicy, metrics({ hallucination: 0.07 }));
    expect(state.phase).toBe('RolledBack');
    expect(weights(effects)).toEqual([5, 0]);
    expect(now - T0).toBe(30_000);
    expect(state.message).toContain('metric hallucination-rate');
    expect(state.message).toMatch(/n canary 500 \/ stable 500/);
  });

  it('too few judged answers: extended past the planned pause, then Paused for lack of evidence at 3x, weight kept', async () => {
    const { state, effects, now } = await run(defaultPolicy, metrics({ samples: 30 }));
    expect(state.phase).toBe('Paused');
    expect(state.pause?.reason).toBe('not-enough-evidence');
    expect(state.weight).toBe(5);
    expect(reasons(effects)).toContain('StageExtended');
    expect(now - T0).toBe(30 * MIN);
    expect(state.message).toContain('hallucination-rate: undecided');
  });
});

describe('not enough evidence never promotes', () => {
  it('below minSamples the rollout pauses, and resume re-runs the analysis', async () => {
    const { state, effects, now } = await run(fixedDefault, metrics({ samples: 3 }));
    expect(state.phase).toBe('Paused');
    expect(state.pause?.reason).toBe('inconclusive');
    expect(state.weight).toBe(5);
    expect(state.message).toContain('only 3 samples; at least 50 needed');
    expect(reasons(effects)).toContain('AnalysisInconclusive');
    expect(reasons(effects)).not.toContain('RolloutCompleted');
    // A tick changes nothing while paused.
    expect(transition(fixedDefault, state, { type: 'tick', now: now + 60 * MIN }).state).toBe(state);
    const resumed = transition(fixedDefault, state, { type: 'action', action: 'resume', now: now + MIN });
    expect(resumed.state.phase).toBe('Progressing');
    expect(resumed.state.analysis?.metrics.every((m) => m.measurements.length === 0)).toBe(true);
    expect(resumed.state.lastAnalysis?.phase).toBe('Inconclusive');
  });

  it('a metrics backend that keeps failing pauses after consecutiveErrorLimit, never promotes', async () => {
    const down: MetricsProvider = {
      measure: async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:9090');
      },
    };
    const { state, effects } = await run(seedPolicy, down);
    expect(state.phase).toBe('Paused');
    expect(state.pause?.reason).toBe('analysis-error');
    expect(state.weight).toBe(5);
    expect(state.message).toContain('ECONNREFUSED');
    expect(reasons(effects)).toContain('AnalysisError');
    // 4 retries allowed, 10s apart: the 5th consecutive error decides.
    expect(state.analysis?.metrics[0]).toMatchObject({ phase: 'Error', error: 5 });
  });
});

describe('the shadow stage (shadow-canary policy)', () => {
  const shadowPolicy = loadShadowPolicy();
  // Quality comes from golden probes, which reach the candidate in the shadow stage already.
  const rows: [string, Partial<Values>, string][] = [
    ['quality-score', { quality: 0.8 }, 'result[0] >= 0.85'],
    ['shadow-failures', { shadowFailures: 0.1 }, 'result[0] <= 0.02'],
    ['shadow-golden-lost', { shadowGoldenLost: 0.3 }, 'result[0] <= 0.1'],
    ['shadow-length-ratio', { shadowLengthRatio: 2 }, 'result[0] >= 0.67 && result[0] <= 1.5'],
  ];
  for (const [metric, canary, threshold] of rows) {
    it(`${metric} rolls back in the shadow stage: no user ever served by the candidate`, async () => {
      const { state, effects } = await run(shadowPolicy, metrics(canary));
      expect(state.phase).toBe('RolledBack');
      expect(state.stepIndex).toBe(1);
      expect(weights(effects)).toEqual([0]);
      expect(state.message).toContain(`metric ${metric} failed`);
      expect(state.message).toContain(threshold);
      // The copies stop with the rollback.
      expect(effects.filter((e) => e.type === 'set-mirror')).toEqual([{ type: 'set-mirror', percent: 20 }, { type: 'set-mirror', percent: 0 }]);
    });
  }

  it('answers not being captured (Redis down) hold the rollout for review before any user sees the candidate', async () => {
    const { state, effects } = await run(shadowPolicy, metrics({ shadowCaptureFailures: 1 }));
    expect(state.phase).toBe('AwaitingReview');
    expect(weights(effects)).toEqual([]);
    expect(state.message).toContain('metric shadow-capture-failures failed');
    expect(effects.filter((e) => e.type === 'set-mirror')).toEqual([{ type: 'set-mirror', percent: 20 }]);
  });

  it('too few pairs after three looks pause, never promote', async () => {
    const { state, effects } = await run(shadowPolicy, metrics({ samples: 3 }));
    expect(state).toMatchObject({ phase: 'Paused', weight: 0, stepIndex: 1 });
    expect(state.analysis?.metrics[0]?.measurements).toHaveLength(3);
    expect(weights(effects)).toEqual([]);
  });

  it('a healthy shadow stage copies 20% through its analysis, then stops the copies at the first canary weight', async () => {
    const { state, effects } = await run(shadowPolicy, metrics());
    expect(state.phase).toBe('Promoted');
    const traffic = effects.filter((e) => e.type === 'set-mirror' || e.type === 'set-weight');
    expect(traffic.slice(0, 3)).toEqual([{ type: 'set-mirror', percent: 20 }, { type: 'set-mirror', percent: 0 }, { type: 'set-weight', weight: 5 }]);
  });
});

describe('user actions', () => {
  const p = loadPolicyText(
    'kind: Policy\nmetadata: {name: p}\nspec:\n  steps:\n    - setWeight: 10\n    - pause: {duration: 10m}\n    - setWeight: 40\n    - pause: {}\n    - setWeight: 80\n',
    'p.yaml',
  ).policies.get('p')!;

  it('pause without duration waits for resume or promote', () => {
    let s = startRollout(p, T0).state;
    s = transition(p, s, { type: 'tick', now: T0 + 10 * MIN }).state;
    expect(s).toMatchObject({ phase: 'Paused', stepIndex: 3, weight: 40, pause: { reason: 'step' } });
    expect(transition(p, s, { type: 'tick', now: T0 + 1000 * MIN }).state.phase).toBe('Paused');
    const resumed = transition(p, s, { type: 'action', action: 'resume', now: T0 + 11 * MIN });
    expect(resumed.state.phase).toBe('Promoted');
    expect(weights(resumed.effects)).toEqual([80, 100]);
  });

  it('a user pause stops the step clock; resume continues with the time left', () => {
    let s = startRollout(p, T0).state;
    s = transition(p, s, { type: 'action', action: 'pause', now: T0 + 4 * MIN }).state;
    s = transition(p, s, { type: 'action', action: 'resume', now: T0 + 60 * MIN }).state;
    expect(transition(p, s, { type: 'tick', now: T0 + 65 * MIN }).state.stepIndex).toBe(1);
    expect(transition(p, s, { type: 'tick', now: T0 + 66 * MIN }).state.stepIndex).toBe(3);
  });

  it('abort sets weight 0 and retires the candidate; retry starts again at step 0 and its set-weight makes it serve again', () => {
    let s = startRollout(p, T0).state;
    const aborted = transition(p, s, { type: 'action', action: 'abort', now: T0 + MIN });
    expect(aborted.state).toMatchObject({ phase: 'RolledBack', weight: 0 });
    expect(weights(aborted.effects)).toEqual([0]);
    expect(aborted.effects.filter((e) => e.type !== 'event')).toEqual([{ type: 'set-weight', weight: 0 }, { type: 'retire-candidate' }]);
    const retried = transition(p, aborted.state, { type: 'action', action: 'retry', now: T0 + 2 * MIN });
    s = retried.state;
    expect(s).toMatchObject({ phase: 'Progressing', stepIndex: 1, weight: 10, stepStartedAt: T0 + 2 * MIN });
    expect(retried.effects.filter((e) => e.type !== 'event')).toEqual([{ type: 'set-weight', weight: 10 }]);
  });

  it('actions that make no sense are ignored with an event', () => {
    const s = startRollout(p, T0).state;
    const r = transition(p, s, { type: 'action', action: 'retry', now: T0 });
    expect(r.state).toBe(s);
    expect(r.effects).toEqual([{ type: 'event', severity: 'Warning', reason: 'ActionIgnored', message: 'retry has no effect while the rollout is Progressing' }]);
  });

  it('promote skips a timed pause', () => {
    const s = startRollout(p, T0).state;
    const r = transition(p, s, { type: 'action', action: 'promote', now: T0 + MIN });
    expect(r.state).toMatchObject({ stepIndex: 3, weight: 40, phase: 'Paused' });
  });
});

describe('restart', () => {
  it('pause time survives a serialisation round trip', () => {
    const s = startRollout(seedPolicy, T0).state; // at the 10m pause, weight 5
    const restored = parseRolloutState(serializeRolloutState(s));
    expect(restored).toEqual(s);
    // The controller restarts 7 minutes in: 3 minutes are left, not 10.
    expect(transition(seedPolicy, restored, { type: 'tick', now: T0 + 7 * MIN }).state.stepIndex).toBe(1);
    const after = transition(seedPolicy, restored, { type: 'tick', now: T0 + 10 * MIN }).state;
    expect(after.stepIndex).toBe(2);
    expect(after.analysis).toBeDefined();
  });

  it('an analysis run with NaN measurements round-trips', async () => {
    const { state } = await run(seedPolicy, metrics({ errors: Number.NaN }));
    expect(state.phase).toBe('RolledBack'); // NaN fails "result[0] < 0.01", as in Argo
    const restored = parseRolloutState(serializeRolloutState(state));
    expect(Number.isNaN(restored.lastAnalysis?.metrics[0]?.measurements[0]?.value?.[0] ?? restored.analysis?.metrics[0]?.measurements[0]?.value?.[0])).toBe(true);
  });

  it('a corrupt status is rejected, not guessed at', () => {
    expect(() => parseRolloutState('{"version":2}')).toThrow(/version/);
    expect(() => parseRolloutState('not json')).toThrow(/not JSON/);
  });
});

describe('invalid input changes no traffic', () => {
  const shadow = loadPolicyText('kind: Policy\nmetadata: {name: s}\nspec:\n  steps:\n    - shadow: {duration: 1h, percent: 100}\n    - setWeight: 50\n', 's.yaml').policies.get('s')!;

  it('a shadow step copies traffic for its duration, serving no user, then the canary steps begin', () => {
    const r = startRollout(shadow, T0);
    expect(r.state).toMatchObject({ phase: 'Progressing', weight: 0 });
    expect(r.effects).toContainEqual({ type: 'set-mirror', percent: 100 });
    expect(weights(r.effects)).toEqual([]);
    const later = transition(shadow, r.state, { type: 'tick', now: T0 + 60 * MIN });
    expect(later.effects.filter((e) => e.type !== 'event')).toEqual([{ type: 'set-mirror', percent: 0 }, { type: 'set-weight', weight: 50 }, { type: 'set-weight', weight: 100 }, { type: 'promote-candidate' }]);
  });

  it('invalidRollout and the invalid event keep the weight', () => {
    expect(invalidRollout('x', 'VirtualService "chat" not found', T0).state).toMatchObject({ phase: 'Invalid', weight: 0 });
    const s = startRollout(seedPolicy, T0).state;
    const r = transition(seedPolicy, s, { type: 'invalid', now: T0 + MIN, message: 'policy p.yaml: spec.steps[0]: bad' });
    expect(r.state).toMatchObject({ phase: 'Invalid', weight: 5 });
    expect(weights(r.effects)).toEqual([]);
  });
});

describe('a policy that changes under a running rollout', () => {
  it('never promotes because the stored step is past the end of a shorter policy', () => {
    const shorter: Policy = { ...seedPolicy, steps: seedPolicy.steps.slice(0, 2) };
    const midway: RolloutState = { ...startRollout(seedPolicy, T0).state, stepIndex: 6, weight: 50, phase: 'Progressing', stepStartedAt: T0 };
    const t = transition(shorter, midway, { type: 'tick', now: T0 + MIN });
    expect(t.state.phase).toBe('Invalid');
    expect(t.state.weight).toBe(50);
    expect(weights(t.effects)).toEqual([]);
    expect(t.effects.some((e) => e.type === 'promote-candidate')).toBe(false);
    expect(t.state.message).toMatch(/policy changed during the rollout/);
  });
});

describe('background analysis (Argo canary.analysis)', () => {
  const SCALE = 30;
  /** Healthy until `faultAt`, then the canary hallucinates: the values follow the clock. */
  function faultyFrom(clock: () => number, faultAt: () => number | undefined, fault: Partial<Values>): MetricsProvider {
    const healthyProvider = metrics();
    const faulty = metrics(fault);
    return { measure: (q, signal, at) => ((faultAt() ?? Infinity) <= clock() ? faulty : healthyProvider).measure(q, signal, at) };
  }

  it('the default policy rolls back a fault injected at the start of the 15m stage within one interval (time-scaled)', async () => {
    let now = T0;
    let faultAt: number | undefined;
    const options = { timeScale: SCALE };
    const provider = faultyFrom(() => now, () => faultAt, { hallucination: 0.3 });
    // Fixed pauses: the stage's own evidence looks would race the background run.
    let state = startRollout(fixedDefault, now, options).state;
    let wakeAt: number | undefined;
    for (let i = 0; i < 2000 && ['Progressing', 'Paused'].includes(state.phase); i++) {
      if (wakeAt !== undefined) now = Math.max(now, wakeAt);
      const r = await advanceRollout({ policy: fixedDefault, state, hashes, provider, clock: () => now, options });
      state = r.state;
      wakeAt = r.wakeAt;
      // The fault starts the moment the rollout enters the 15m pause at weight 25.
      if (faultAt === undefined && state.stepIndex === 4) faultAt = now;
      if (wakeAt === undefined) break;
    }
    expect(faultAt).toBeDefined();
    expect(state.phase, state.message).toBe('RolledBack');
    expect(state.weight).toBe(0);
    // Still inside the 15m stage (30 s at 30x): found by the background run, not the step's analysis.
    expect(state.stepIndex).toBe(4);
    const interval = MIN / SCALE;
    expect(now - faultAt!).toBeLessThanOrEqual(interval);
    expect(state.message).toContain('background analysis ai-quality-guard, guardrail: metric hallucination-rate failed: value 0.3 breached result[0] <= 0.05');
    // The status keeps the background run with each measurement's time.
    const run = state.background!;
    expect(run.phase).toBe('Failed');
    const hallucination = run.metrics.find((m) => m.name === 'hallucination-rate')!;
    expect(hallucination.measurements.at(-1)).toMatchObject({ phase: 'Failed', value: [0.3], startedAt: now, finishedAt: now });
    expect(hallucination.measurements.length).toBeGreaterThan(1);
    const times = hallucination.measurements.map((m) => m.finishedAt);
    expect(times.every((t, i) => i === 0 || t - times[i - 1]! === interval)).toBe(true);
  });

  it("a guardrail trip (extproc's fledge_guardrail_tripped) rolls back within one check interval, naming the guardrail", async () => {
    let now = T0;
    let faultAt: number | undefined;
    const options = { timeScale: SCALE };
    // Only the trip series says anything: the rollback metrics stay healthy.
    const provider = faultyFrom(() => now, () => faultAt, { tripped: 1 });
    let state = startRollout(defaultPolicy, now, options).state;
    let wakeAt: number | undefined;
    for (let i = 0; i < 2000 && ['Progressing', 'Paused'].includes(state.phase); i++) {
      if (wakeAt !== undefined) now = Math.max(now, wakeAt);
      const r = await advanceRollout({ policy: defaultPolicy, state, hashes, provider, clock: () => now, options });
      state = r.state;
      wakeAt = r.wakeAt;
      if (faultAt === undefined && state.stepIndex === 4) faultAt = now;
      if (wakeAt === undefined) break;
    }
    expect(state.phase, state.message).toBe('RolledBack');
    expect(state.weight).toBe(0);
    expect(state.stepIndex).toBe(4);
    expect(now - faultAt!).toBeLessThanOrEqual(5_000 / SCALE);
    expect(state.message).toMatch(/background analysis ai-quality-guard, guardrail: metric guardrail failed: value 1 breached result\[0\] < 1; all traffic returned to stable/);
  });

  it('the seed rollout without background analysis only notices the fault at the end of the stage', async () => {
    let now = T0;
    let faultAt: number | undefined;
    const provider = faultyFrom(() => now, () => faultAt, { hallucination: 0.3 });
    const { background: _none, ...seedDefault } = fixedDefault;
    let state = startRollout(seedDefault, now).state;
    let wakeAt: number | undefined;
    for (let i = 0; i < 100 && state.phase === 'Progressing'; i++) {
      if (wakeAt !== undefined) now = Math.max(now, wakeAt);
      const r = await advanceRollout({ policy: seedDefault, state, hashes, provider, clock: () => now });
      state = r.state;
      wakeAt = r.wakeAt;
      if (faultAt === undefined && state.stepIndex === 4) faultAt = now;
    }
    expect(state.phase).toBe('RolledBack');
    expect(now - faultAt!).toBe(15 * MIN);
  });

  const policyText = (metric: string) => `
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: bg}
spec:
  strategy:
    canary:
      analysis:
        templates: [{templateName: guard}]
        args: [{name: canary-hash, valueFrom: {podTemplateHashValue: Latest}}]
        startingStep: 2
      steps:
        - setWeight: 10
        - pause: {duration: 10m}
        - setWeight: 30
        - pause: {duration: 30m}
        - setWeight: 100
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: guard}
spec:
  metrics:
    - name: errors
      interval: 1m
${metric}
      provider:
        prometheus:
          query: sum(rate(inference_errors_total{rollout_hash="{{args.canary-hash}}"}[5m]))
`;

  /** Drives a policy with a provider whose error value per measurement comes from `values` (then the last one). */
  async function drive(policy: Policy, values: (number | Error)[], until: (s: RolloutState) => boolean = () => false) {
    let now = T0;
    let calls = 0;
    const provider: MetricsProvider = {
      async measure(query) {
        // n for each measurement (the derived samples query) is not one of the values.
        if (query.includes('increase(inference_requests_total')) return [1000];
        const v = values[Math.min(calls++, values.length - 1)]!;
        if (v instanceof Error) throw v;
        return [v];
      },
    };
    let state = startRollout(policy, now).state;
    const effects: RolloutEffect[] = [];
    for (let i = 0; i < 200 && state.phase === 'Progressing' && !until(state); i++) {
      const r = await advanceRollout({ policy, state, hashes, provider, clock: () => now });
      state = r.state;
      effects.push(...r.effects);
      if (r.wakeAt === undefined) break;
      now = Math.max(now, r.wakeAt);
    }
    return { state, effects, now, calls: () => calls };
  }

  it('starts at startingStep, and failureLimit counts failed measurements before rolling back', async () => {
    const policy = loadPolicyText(policyText('      successCondition: result[0] <= 0.01\n      failureLimit: 2'), 'bg.yaml').policies.get('bg')!;
    expect(policy.background).toMatchObject({ startingStep: 2 });
    // ok, ok, bad, ok, bad, bad: the third failed measurement (> failureLimit 2) rolls back.
    const { state, effects, now } = await drive(policy, [0, 0, 0.5, 0, 0.5, 0.5]);
    expect(state.phase).toBe('RolledBack');
    expect(state.stepIndex).toBe(3);
    expect(state.background?.metrics[0]).toMatchObject({ failed: 3, successful: 3, count: 6 });
    // Not measured during the 10m pause before startingStep: the run began at step 3's start.
    expect(state.background?.startedAt).toBe(T0 + 10 * MIN);
    expect(now).toBe(T0 + 15 * MIN);
    expect(state.message).toContain('3 failed measurements > failureLimit 2');
    expect(reasons(effects).filter((r) => r === 'AnalysisStarted')).toHaveLength(1);
  });

  it('a run whose metrics reached their count is done and the rollout goes on to promotion', async () => {
    const policy = loadPolicyText(policyText('      successCondition: result[0] <= 0.01\n      count: 3'), 'bg.yaml').policies.get('bg')!;
    const { state, calls } = await drive(policy, [0]);
    expect(state.phase).toBe('Promoted');
    expect(state.background).toMatchObject({ phase: 'Successful' });
    expect(calls()).toBe(3);
  });

  it('inconclusive past inconclusiveLimit pauses; resume starts a fresh background run', async () => {
    const policy = loadPolicyText(policyText('      successCondition: result[0] <= 0.01\n      failureCondition: result[0] > 0.1\n      inconclusiveLimit: 1'), 'bg.yaml').policies.get('bg')!;
    const { state, now } = await drive(policy, [0.05]);
    expect(state).toMatchObject({ phase: 'Paused', pause: { reason: 'inconclusive' }, weight: 30 });
    expect(state.background?.metrics[0]?.inconclusive).toBe(2);
    const resumed = transition(policy, state, { type: 'action', action: 'resume', now: now + MIN });
    expect(resumed.state.phase).toBe('Progressing');
    expect(resumed.state.background).toMatchObject({ phase: 'Running', startedAt: now + MIN });
    expect(resumed.state.background?.metrics[0]?.measurements).toEqual([]);
  });

  it('consecutiveErrorLimit errors in a row (metrics backend down) pause, never promote', async () => {
    const policy = loadPolicyText(policyText('      successCondition: result[0] <= 0.01\n      consecutiveErrorLimit: 2'), 'bg.yaml').policies.get('bg')!;
    const down = new Error('connect ECONNREFUSED');
    const { state } = await drive(policy, [0, down, 0, down, down, down]);
    expect(state).toMatchObject({ phase: 'Paused', pause: { reason: 'analysis-error' }, weight: 30 });
    expect(state.background?.metrics[0]).toMatchObject({ phase: 'Error', consecutiveError: 3, error: 4 });
  });

  it('measures through a user pause and drops measurements that arrive after the rollout stopped', async () => {
    const policy = loadPolicyText(policyText('      successCondition: result[0] <= 0.01'), 'bg.yaml').policies.get('bg')!;
    const { state, now } = await drive(policy, [0], (s) => s.background !== undefined && s.background.metrics[0]!.count >= 1);
    const paused = transition(policy, state, { type: 'action', action: 'pause', now }).state;
    expect(paused.phase).toBe('Paused');
    const bad = [{ metric: 'errors', measurement: { phase: 'Failed' as const, startedAt: now + MIN, finishedAt: now + MIN, value: [0.5] } }];
    expect(transition(policy, paused, { type: 'measured', now: now + MIN, measurements: [], background: bad }).state.phase).toBe('RolledBack');
    const aborted = transition(policy, state, { type: 'action', action: 'abort', now }).state;
    expect(transition(policy, aborted, { type: 'measured', now: now + MIN, measurements: [], background: bad }).state).toEqual(aborted);
  });
});
