/**
 * The policy surface of evidence-based comparison: the `compare` block, its count queries
 * (explicit or derived from the metric's query), evidenceDecision on them, and the stage
 * rule. Argo threshold-only metrics are untouched (policy-load.test.ts keeps covering them).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config-error.js';
import { resolveArgs } from '../../controller/analysis/args.js';
import { countQueriesFor, evidenceDecision, EvidenceSpecError, bucketsFromSeries } from '../../controller/analysis/evidence/evidence-decision.js';
import { compareStratifiedProportions } from '../../controller/analysis/evidence/proportions.js';
import { stageEvidenceAction } from '../../controller/analysis/evidence/stage-rule.js';
import { deriveCountQueries, overWindow } from '../../controller/policy/compare.js';
import { loadPolicyText } from '../../controller/policy/load.js';
import type { Metric } from '../../controller/policy/schema.js';

const H = '{{args.canary-hash}}';

function policyWith(metricYaml: string): string {
  return `kind: Policy
metadata: {name: p}
spec:
  steps:
    - setWeight: 5
    - analysis: {templates: [{templateName: t}]}
  analysisTemplates:
    - metadata: {name: t}
      spec:
        metrics:
${metricYaml}
`;
}

function metricOf(metricYaml: string): Metric {
  const step = loadPolicyText(policyWith(metricYaml), 'p.yaml').policies.get('p')!.steps[1]!;
  if (step.kind !== 'analysis') throw new Error('expected an analysis step');
  return step.analysis.metrics[0]!;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const ERROR_RATE = `          - name: error-rate
            successCondition: result[0] <= 0.01
            provider:
              prometheus:
                query: |
                  (sum(rate(inference_errors_total{rollout_hash="${H}"}[10m])) or vector(0))
                  /
                  sum(rate(inference_requests_total{rollout_hash="${H}"}[10m]))
            compare: {margin: 0.005}`;

describe('the compare block', () => {
  it('defaults: baseline stable, confidence 0.95, higher is worse, 50 samples per arm', () => {
    expect(metricOf(ERROR_RATE).compare).toEqual({ baseline: 'stable', margin: 0.005, confidence: 0.95, worse: 'higher', minSamples: 50 });
  });

  it('a threshold metric without compare loads exactly as before', () => {
    const m = metricOf(`          - name: e\n            successCondition: result[0] < 0.01\n            provider: {prometheus: {query: 'sum(rate(a_total{h="${H}"}[5m])) / sum(rate(b_total{h="${H}"}[5m]))'}}`);
    expect(m.compare).toBeUndefined();
    expect(m.successCondition).toBe('result[0] < 0.01');
  });

  it('derives the counts of a rate from the seed-shaped query, rendered per arm', () => {
    const m = metricOf(ERROR_RATE);
    const queries = countQueriesFor(m, resolveArgs([{ name: 'canary-hash', fromHash: 'Latest' }], { canaryHash: 'c0ffee', stableHash: '5ab1e' }));
    expect(queries.canary).toEqual({
      kind: 'proportions',
      events: 'sum(increase(inference_errors_total{rollout_hash="c0ffee"}[10m]))',
      trials: 'sum(increase(inference_requests_total{rollout_hash="c0ffee"}[10m]))',
    });
    expect(queries.stable).toEqual({
      kind: 'proportions',
      events: 'sum(increase(inference_errors_total{rollout_hash="5ab1e"}[10m]))',
      trials: 'sum(increase(inference_requests_total{rollout_hash="5ab1e"}[10m]))',
    });
  });

  it("derives histogram buckets from the seed's p95 query, with or without sum by (le)", () => {
    const seed = `histogram_quantile(0.95,\n  rate(inference_latency_seconds_bucket{rollout_hash="${H}"}[10m]))`;
    const summed = `histogram_quantile(0.95, sum by (le) (rate(inference_latency_seconds_bucket{rollout_hash="${H}"}[10m])))`;
    for (const q of [seed, summed]) {
      expect(deriveCountQueries(q)).toEqual({ kind: 'distribution', buckets: `sum by (le) (increase(inference_latency_seconds_bucket{rollout_hash="${H}"}[10m]))` });
    }
  });

  it('explicit count queries win over derivation', () => {
    const m = metricOf(`          - name: golden-pass
            provider: {prometheus: {query: 'avg(inference_quality_score{rollout_hash="${H}"})'}}
            compare:
              margin: 0.03
              worse: lower
              events: 'sum(increase(golden_pass_total{rollout_hash="${H}"}[10m]))'
              trials: 'sum(increase(golden_total{rollout_hash="${H}"}[10m]))'`);
    expect(m.compare).toMatchObject({ worse: 'lower', margin: 0.03 });
  });

  it("explicit plain counts take the evidence stage's window; other shapes run as written", () => {
    const m = metricOf(`          - name: hallucination-rate
            provider: {prometheus: {query: 'avg(inference_quality_score{rollout_hash="${H}"})'}}
            compare:
              margin: 0.03
              events: '(sum(increase(v_total{rollout_hash="${H}"}[10m])) or vector(0))'
              trials: sum( increase(e_total{rollout_hash="${H}"}[10m]) )`);
    const args = resolveArgs([{ name: 'canary-hash', fromHash: 'Latest' }], { canaryHash: 'c0ffee', stableHash: '5ab1e' });
    expect(countQueriesFor(m, args, '95s').stable).toEqual({
      kind: 'proportions',
      events: 'sum(increase(v_total{rollout_hash="5ab1e"}[95s])) or vector(0)',
      trials: 'sum(increase(e_total{rollout_hash="5ab1e"}[95s]))',
    });
    // Outside a stage (no window): as written.
    expect(countQueriesFor(m, args).canary).toMatchObject({ trials: 'sum( increase(e_total{rollout_hash="c0ffee"}[10m]) )' });
    expect(overWindow('sum by (le) (increase(x_bucket{a="b"}[10m]))', '70s')).toBe('sum by (le) (increase(x_bucket{a="b"}[70s]))');
    for (const q of ['sum(increase(x_total[10m] offset 1h))', 'sum(increase(x_total[10m])) / 2', 'sum(increase(x_total[10m])) + sum(increase(y_total[10m]))', 'sum(rate(x_total[10m]))', 'sum(max_over_time(increase(x_total[1m])[10m:1m]))']) {
      expect(overWindow(q, '70s')).toBe(q);
    }
  });

  it('refuses to derive counts from an estimated (1/p) counter, naming the field', () => {
    const err = configError(() =>
      loadPolicyText(
        policyWith(`          - name: hallucination-rate
            provider:
              prometheus:
                query: sum(rate(inference_hallucination_total{rollout_hash="${H}"}[10m])) / sum(rate(inference_requests_total{rollout_hash="${H}"}[10m]))
            compare: {margin: 0.02}`),
        'p.yaml',
      ),
    );
    expect(err.problems[0]!.path).toBe('spec.analysisTemplates[0].spec.metrics[0].compare');
    expect(err.problems[0]!.message).toContain('inference_hallucination_total: it is an estimated counter');
  });

  it('a query of no known shape needs explicit counts', () => {
    const err = configError(() => loadPolicyText(policyWith(`          - name: q\n            provider: {prometheus: {query: 'avg(inference_quality_score{rollout_hash="${H}"})'}}\n            compare: {margin: 0.05}`), 'p.yaml'));
    expect(err.problems[0]!.path).toMatch(/metrics\[0\]\.compare$/);
    expect(err.problems[0]!.message).toContain('give compare.events and compare.trials, or compare.buckets');
  });

  it('bad fields are named', () => {
    const cases: [string, RegExp, RegExp][] = [
      ['{confidence: 0.9}', /compare\.margin$/, /margin .* is required/],
      ['{margin: 0.02, confidence: 1.5}', /compare\.confidence$/, /below 1/],
      ['{margin: -1}', /compare\.margin$/, /positive/],
      ['{margin: 0.02, baseline: last-week}', /compare\.baseline$/, /stable/],
      ['{margin: 0.02, events: "sum(x)"}', /compare\.trials$/, /go together/],
      ['{margin: 0.02, marign: 0.01}', /compare$/, /marign/],
    ];
    for (const [block, path, message] of cases) {
      const err = configError(() => loadPolicyText(policyWith(`          - name: m\n            provider: {prometheus: {query: 'sum(rate(a_total{h="${H}"}[5m])) / sum(rate(b_total{h="${H}"}[5m]))'}}\n            compare: ${block}`), 'p.yaml'));
      expect(err.problems.some((p) => path.test(p.path) && message.test(p.message)), `${block}: ${JSON.stringify(err.problems)}`).toBe(true);
    }
  });

  it('count queries that would read the same series for both arms are refused', () => {
    const err = configError(() =>
      loadPolicyText(policyWith(`          - name: m\n            provider: {prometheus: {query: 'up'}}\n            compare: {margin: 0.02, events: 'sum(errors_total)', trials: 'sum(requests_total)'}`), 'p.yaml'),
    );
    expect(err.problems[0]!.message).toContain('the stable arm would count the same series');
  });
});

describe('evidenceDecision', () => {
  const errorRate = metricOf(ERROR_RATE);

  it('returns the verdict, estimate, interval and n per arm', () => {
    const d = evidenceDecision(errorRate, { kind: 'proportions', canary: { events: 60, trials: 3000 }, stable: { events: 300, trials: 57_000 } });
    expect(d).toMatchObject({ metric: 'error-rate', test: 'proportions', verdict: 'worse', margin: 0.005, confidence: 0.95, n: { canary: 3000, stable: 57_000 } });
    expect(d.estimate).toBeCloseTo(0.02 - 300 / 57_000, 12);
    expect(d.interval[0]).toBeGreaterThan(0);
    expect(d.interval[1]).toBeGreaterThan(d.estimate);
  });

  it('stages given separately are stratified: equal rates per stage under a drifting base rate are not worse', () => {
    // The base rate doubles between stages while the canary's share grows: pooling the
    // counts would make the canary look worse (Simpson); per stage it is exactly equal.
    const stages = [
      { canary: { events: 20, trials: 1000 }, stable: { events: 380, trials: 19_000 } },
      { canary: { events: 2000, trials: 50_000 }, stable: { events: 2000, trials: 50_000 } },
    ];
    const pooled = evidenceDecision(errorRate, { kind: 'proportions', canary: { events: 2020, trials: 51_000 }, stable: { events: 2380, trials: 69_000 } });
    const stratified = evidenceDecision(errorRate, { kind: 'proportions', stages });
    expect(pooled.estimate).toBeGreaterThan(0.005);
    expect(pooled.verdict).not.toBe('not-worse');
    expect(stratified.estimate).toBeCloseTo(0, 12);
    expect(stratified.verdict).toBe('not-worse');
    expect(stratified.n).toEqual({ canary: 51_000, stable: 69_000 });
  });

  it('a single stage is the plain comparison', () => {
    const one = { canary: { events: 13, trials: 900 }, stable: { events: 150, trials: 17_000 } };
    const settings = { margin: 0.005, confidence: 0.95, worse: 'higher' as const, minSamples: 50 };
    expect(evidenceDecision(errorRate, { kind: 'proportions', stages: [one] })).toMatchObject(compareStratifiedProportions([one], settings));
  });

  it('unusable counts decide nothing and say why', () => {
    const d = evidenceDecision(errorRate, { kind: 'proportions', canary: { events: 10, trials: 5 }, stable: { events: 1, trials: 100 } });
    expect(d.verdict).toBe('undecided');
    expect(d.problem).toContain('canary: more events (10) than trials (5)');
  });

  it('counts of the wrong kind, or a metric without compare, are programming errors', () => {
    expect(() => evidenceDecision(errorRate, { kind: 'distribution', canary: [], stable: [] })).toThrow(EvidenceSpecError);
    const plain = metricOf(`          - name: e\n            successCondition: result[0] < 1\n            provider: {prometheus: {query: up}}`);
    expect(() => evidenceDecision(plain, { kind: 'proportions', canary: { events: 0, trials: 1 }, stable: { events: 0, trials: 1 } })).toThrow(/has no compare block/);
  });

  it('latency buckets from Prometheus series', () => {
    const latency = metricOf(`          - name: p95
            provider: {prometheus: {query: 'histogram_quantile(0.95, sum by (le) (rate(lat_bucket{h="${H}"}[10m])))'}}
            compare: {margin: 0.05}`);
    const series = (counts: number[]) => bucketsFromSeries(['0.1', '0.5', '1', '+Inf'].map((le, i) => ({ labels: { le }, value: counts[i]! })));
    const fast = series([500, 900, 990, 1000]);
    const slow = series([100, 400, 800, 1000]);
    expect(evidenceDecision(latency, { kind: 'distribution', canary: slow, stable: fast }).verdict).toBe('worse');
    expect(evidenceDecision(latency, { kind: 'distribution', canary: fast, stable: fast }).verdict).toBe('not-worse');
    expect(() => bucketsFromSeries([{ labels: {}, value: 1 }])).toThrow(/no le label/);
  });
});

describe('stageEvidenceAction', () => {
  const decision = (metric: string, verdict: 'worse' | 'not-worse' | 'undecided') => ({
    metric,
    test: 'proportions' as const,
    verdict,
    estimate: 0.01,
    interval: [0, 0.03] as [number, number],
    n: { canary: 300, stable: 5700 },
    margin: 0.02,
    confidence: 0.95,
    reason: verdict,
  });

  it('a worse metric acts at once; a rollback outranks a review', () => {
    const a = stageEvidenceAction(
      [
        { decision: decision('cost', 'worse'), action: 'pause-for-review' },
        { decision: decision('errors', 'worse'), action: 'rollback' },
      ],
      1000,
      600_000,
    );
    expect(a).toMatchObject({ kind: 'worse', action: 'rollback', decision: { metric: 'errors' } });
    if (a.kind === 'worse') expect(a.message).toContain('n canary 300 / stable 5700');
  });

  it('ends the stage when every metric is not worse, continues while any is undecided, then pauses', () => {
    const both = (v: 'not-worse' | 'undecided') => [
      { decision: decision('a', 'not-worse'), action: 'rollback' as const },
      { decision: decision('b', v), action: 'rollback' as const },
    ];
    expect(stageEvidenceAction(both('not-worse'), 1000, 600_000).kind).toBe('end-stage');
    expect(stageEvidenceAction(both('undecided'), 599_999, 600_000).kind).toBe('continue');
    const paused = stageEvidenceAction(both('undecided'), 600_000, 600_000);
    expect(paused.kind).toBe('not-enough-evidence');
    if (paused.kind === 'not-enough-evidence') expect(paused.message).toBe('not enough evidence: b undecided (estimate 0.01 [0, 0.03], n canary 300 / stable 5700)');
  });
});

describe('until a stage runs the evidence test', () => {
  it('a compare-only metric is never a pass on its value alone', async () => {
    const { judgeMeasurement } = await import('../../controller/analysis/measurement.js');
    const compareOnly = metricOf(`          - name: error-rate
            provider:
              prometheus:
                query: sum(rate(inference_errors_total{rollout_hash="${H}"}[10m])) / sum(rate(inference_requests_total{rollout_hash="${H}"}[10m]))
            compare: {margin: 0.005}`);
    const m = judgeMeasurement(compareOnly, { result: [0] }, { startedAt: 0, finishedAt: 1 });
    expect(m.phase).toBe('Inconclusive');
    expect(m.message).toContain('judged by its comparison with the stable');
    // Its thresholds, when it has them, still act as hard limits.
    const withLimit = metricOf(ERROR_RATE);
    expect(judgeMeasurement(withLimit, { result: [0.02] }, { startedAt: 0, finishedAt: 1 }).phase).toBe('Failed');
    expect(judgeMeasurement(withLimit, { result: [0.001] }, { startedAt: 0, finishedAt: 1 }).phase).toBe('Successful');
  });
});
