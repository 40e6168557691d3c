import { describe, expect, it } from 'vitest';
import { mergeArgs, resolveArgs, substituteArgs, UnknownArgError } from '../../controller/analysis/args.js';
import { compileCondition, ConditionEvaluationError } from '../../controller/analysis/condition.js';
import { judgeMeasurement, type Measurement, type MeasurementPhase } from '../../controller/analysis/measurement.js';
import { analysisVerdict, dueMetrics, nextRunWakeAt, recordMeasurement, recordMeasurements, startAnalysisRun } from '../../controller/analysis/run.js';
import type { ResolvedAnalysis } from '../../controller/policy/policy.js';
import { metricSchema, type Metric } from '../../controller/policy/schema.js';

const metric = (fields: Record<string, unknown>): Metric => metricSchema.parse({ name: 'm', provider: { prometheus: { query: 'q{h="{{args.canary-hash}}"}' } }, ...fields });
const analysisOf = (...metrics: Metric[]): ResolvedAnalysis => ({ templateNames: ['t'], metrics, args: mergeArgs([], []) });
const at = (t: number) => ({ startedAt: t, finishedAt: t });
const m = (phase: MeasurementPhase, t: number, extra: Partial<Measurement> = {}): Measurement => ({ phase, ...at(t), value: [1], ...extra });

describe('conditions', () => {
  it('support Argo/expr-lang syntax', () => {
    const cases: [string, boolean][] = [
      ['result[0] < 0.01', true],
      ['len(result) > 0 && result[0] >= 0.9', false],
      ['result[0] < 0.01 and not (result[0] > 1)', true],
      ['result[0] > 1 or len(result) == 1', true],
      ['true || false && false', true],
      ['!(result[0] > 1)', true],
      ['isNaN(result[0]) || isInf(result[0])', false],
      ['result[0] * 100 - 0.5 < 1', true],
    ];
    for (const [text, expected] of cases) expect([text, compileCondition(text).evaluate({ result: [0.005] })]).toEqual([text, expected]);
  });

  it('&& binds tighter than || as in expr-lang', () => {
    expect(compileCondition('true || false && false').evaluate({ result: [] })).toBe(true);
    expect(compileCondition('false && true || true').evaluate({ result: [] })).toBe(true);
  });

  it('reads the stable baseline', () => {
    const c = compileCondition('result[0] > 2 * stable[0]');
    expect([...c.variables].sort()).toEqual(['result', 'stable']);
    expect(c.evaluate({ result: [5], stable: [2] })).toBe(true);
    expect(c.evaluate({ result: [3], stable: [2] })).toBe(false);
  });

  it('an index past the end is an evaluation error, not false', () => {
    expect(() => compileCondition('result[1] < 1').evaluate({ result: [0] })).toThrow(ConditionEvaluationError);
    expect(() => compileCondition('result[0]').evaluate({ result: [0] })).toThrow(/not true\/false/);
  });
});

describe('args', () => {
  it('step args override template defaults; Latest-hash args take the stable hash in the baseline', () => {
    const specs = mergeArgs([{ name: 'service', value: 'chat' }, { name: 'canary-hash' }], [{ name: 'canary-hash', valueFrom: { podTemplateHashValue: 'Latest' } }]);
    const args = resolveArgs(specs, { canaryHash: 'c1', stableHash: 's1' });
    expect(args.canary).toEqual({ service: 'chat', 'canary-hash': 'c1', 'stable-hash': 's1' });
    expect(args.baseline).toEqual({ service: 'chat', 'canary-hash': 's1', 'stable-hash': 's1' });
    expect(substituteArgs('x{s="{{args.service}}",h="{{ args.canary-hash }}"}', args.canary)).toBe('x{s="chat",h="c1"}');
  });

  it('an unknown arg fails clearly', () => {
    expect(() => substituteArgs('{{args.nope}} {{args.nada}}', {})).toThrow(UnknownArgError);
    expect(() => substituteArgs('{{args.nope}}', {})).toThrow('{{args.nope}}');
  });
});

describe('one measurement', () => {
  it('follows Argo for success-only, failure-only, both and neither', () => {
    const judge = (fields: Record<string, unknown>, v: number) => judgeMeasurement(metric(fields), { result: [v] }, at(0)).phase;
    expect(judge({ successCondition: 'result[0] < 1' }, 0.5)).toBe('Successful');
    expect(judge({ successCondition: 'result[0] < 1' }, 2)).toBe('Failed');
    expect(judge({ failureCondition: 'result[0] > 5' }, 2)).toBe('Successful');
    expect(judge({ failureCondition: 'result[0] > 5' }, 6)).toBe('Failed');
    expect(judge({ successCondition: 'result[0] < 1', failureCondition: 'result[0] > 5' }, 3)).toBe('Inconclusive');
    expect(judge({}, 3)).toBe('Successful');
  });

  it('NaN goes to the condition as Argo does', () => {
    const judge = (fields: Record<string, unknown>) => judgeMeasurement(metric(fields), { result: [Number.NaN] }, at(0)).phase;
    expect(judge({ successCondition: 'result[0] < 0.01' })).toBe('Failed');
    expect(judge({ failureCondition: 'result[0] > 0.01' })).toBe('Successful');
    expect(judge({ successCondition: 'isNaN(result[0]) || result[0] < 0.01' })).toBe('Successful');
  });

  it('no data is inconclusive, never a pass', () => {
    const failOnly = metric({ failureCondition: 'result[0] > 0.01' });
    const r = judgeMeasurement(failOnly, { result: [] }, at(0));
    expect(r.phase).toBe('Inconclusive');
    expect(r.message).toContain('no data');
  });

  it('below minSamples is inconclusive even when the value looks fine', () => {
    const mm = metric({ successCondition: 'result[0] < 0.01', minSamples: 100, samplesQuery: 'n' });
    expect(judgeMeasurement(mm, { result: [0], samples: 12 }, at(0))).toMatchObject({ phase: 'Inconclusive', message: 'only 12 samples; at least 100 needed' });
    expect(judgeMeasurement(mm, { result: [0] }, at(0)).phase).toBe('Inconclusive');
    expect(judgeMeasurement(mm, { result: [0], samples: 100 }, at(0)).phase).toBe('Successful');
  });

  it('baseline condition: compares with stable, and a missing baseline is inconclusive', () => {
    const p95 = metric({ name: 'p95', successCondition: 'result[0] <= 2 * stable[0]' });
    expect(judgeMeasurement(p95, { result: [1.9], stable: [1] }, at(0)).phase).toBe('Successful');
    const failed = judgeMeasurement(p95, { result: [2.5], stable: [1] }, at(0));
    expect(failed).toMatchObject({ phase: 'Failed', threshold: 'result[0] <= 2 * stable[0]', value: [2.5], stable: [1] });
    expect(failed.message).toBe('value 2.5 (stable 1) did not meet result[0] <= 2 * stable[0]');
    expect(judgeMeasurement(p95, { result: [2.5], stable: [] }, at(0)).phase).toBe('Inconclusive');
  });

  it('an evaluation error is an Error measurement', () => {
    expect(judgeMeasurement(metric({ successCondition: 'result[1] < 1' }), { result: [0] }, at(0)).phase).toBe('Error');
  });
});

describe('the run over time', () => {
  it('count unset and interval unset: one measurement decides', () => {
    const a = analysisOf(metric({ successCondition: 'result[0] < 1' }));
    let run = startAnalysisRun(a, 1000);
    expect(dueMetrics(a, run, 1000).map((x) => x.name)).toEqual(['m']);
    run = recordMeasurement(a, run, 'm', m('Successful', 1000));
    expect(run.phase).toBe('Successful');
    expect(analysisVerdict(a, run)).toEqual({ kind: 'successful' });
    expect(dueMetrics(a, run, 10_000)).toEqual([]);
  });

  it('initialDelay and interval schedule measurements; timeScale compresses them', () => {
    const a = analysisOf(metric({ successCondition: 'result[0] < 1', initialDelay: '1m', interval: '30s', count: 3 }));
    let run = startAnalysisRun(a, 0);
    expect(nextRunWakeAt(a, run)).toBe(60_000);
    expect(nextRunWakeAt(a, run, { timeScale: 60 })).toBe(1000);
    expect(dueMetrics(a, run, 59_999)).toEqual([]);
    run = recordMeasurement(a, run, 'm', m('Successful', 60_000));
    expect(nextRunWakeAt(a, run)).toBe(90_000);
    run = recordMeasurement(a, run, 'm', m('Successful', 90_000));
    expect(run.phase).toBe('Running');
    run = recordMeasurement(a, run, 'm', m('Successful', 120_000));
    expect(run.phase).toBe('Successful');
    expect(nextRunWakeAt(a, run)).toBeUndefined();
  });

  it('failureLimit: Failed only when failures exceed it', () => {
    const a = analysisOf(metric({ successCondition: 'result[0] < 1', interval: '1m', count: 5, failureLimit: 2 }));
    let run = startAnalysisRun(a, 0);
    run = recordMeasurement(a, run, 'm', m('Failed', 0, { threshold: 'result[0] < 1', value: [3] }));
    run = recordMeasurement(a, run, 'm', m('Failed', 60_000, { threshold: 'result[0] < 1', value: [3] }));
    expect(run.phase).toBe('Running');
    expect(analysisVerdict(a, run).kind).toBe('running');
    run = recordMeasurement(a, run, 'm', m('Failed', 120_000, { threshold: 'result[0] < 1', value: [4] }));
    expect(run.phase).toBe('Failed');
    const verdict = analysisVerdict(a, run);
    expect(verdict).toMatchObject({ kind: 'failed', action: 'rollback', metric: 'm', threshold: 'result[0] < 1' });
    expect(verdict.kind === 'failed' && verdict.message).toBe('metric m failed: value 4 breached result[0] < 1 (3 failed measurements > failureLimit 2)');
  });

  it('failures within the limit and count reached: Successful', () => {
    const a = analysisOf(metric({ successCondition: 'result[0] < 1', interval: '1m', count: 2, failureLimit: 1 }));
    let run = startAnalysisRun(a, 0);
    run = recordMeasurement(a, run, 'm', m('Failed', 0));
    run = recordMeasurement(a, run, 'm', m('Successful', 60_000));
    expect(run.phase).toBe('Successful');
  });

  it('inconclusiveLimit: Inconclusive only when inconclusive measurements exceed it', () => {
    const a = analysisOf(metric({ successCondition: 'result[0] < 1', interval: '1m', count: 4, inconclusiveLimit: 1 }));
    let run = startAnalysisRun(a, 0);
    run = recordMeasurement(a, run, 'm', m('Inconclusive', 0, { message: 'the query returned no data' }));
    expect(run.phase).toBe('Running');
    run = recordMeasurement(a, run, 'm', m('Inconclusive', 60_000, { message: 'the query returned no data' }));
    expect(run.phase).toBe('Inconclusive');
    expect(analysisVerdict(a, run)).toMatchObject({ kind: 'inconclusive', metric: 'm' });
  });

  it('consecutiveErrorLimit: errors retry after 10s, do not count, reset on success, Error past the limit', () => {
    const a = analysisOf(metric({ successCondition: 'result[0] < 1', consecutiveErrorLimit: 2 }));
    let run = startAnalysisRun(a, 0);
    run = recordMeasurement(a, run, 'm', m('Error', 0, { message: 'down' }));
    expect(nextRunWakeAt(a, run)).toBe(10_000);
    run = recordMeasurement(a, run, 'm', m('Error', 10_000, { message: 'down' }));
    expect(run.phase).toBe('Running');
    run = recordMeasurement(a, run, 'm', m('Error', 20_000, { message: 'connection refused' }));
    expect(run.phase).toBe('Error');
    expect(run.metrics[0]).toMatchObject({ error: 3, count: 0, consecutiveError: 3 });
    expect(analysisVerdict(a, run)).toMatchObject({ kind: 'error', metric: 'm' });
    expect(run.message).toContain('connection refused');

    let ok = startAnalysisRun(a, 0);
    ok = recordMeasurement(a, ok, 'm', m('Error', 0));
    ok = recordMeasurement(a, ok, 'm', m('Error', 10_000));
    ok = recordMeasurement(a, ok, 'm', m('Successful', 20_000));
    expect(ok.phase).toBe('Successful');
    expect(ok.metrics[0]).toMatchObject({ consecutiveError: 0, count: 1 });
  });

  it('several metrics: complete when all complete; rollback outranks pause-for-review', () => {
    const a = analysisOf(
      metric({ name: 'cost', successCondition: 'result[0] < 1', action: 'pause-for-review' }),
      metric({ name: 'errors', successCondition: 'result[0] < 1' }),
      metric({ name: 'quality', successCondition: 'result[0] > 0' }),
    );
    let run = startAnalysisRun(a, 0);
    run = recordMeasurement(a, run, 'quality', m('Successful', 0));
    expect(run.phase).toBe('Running');
    run = recordMeasurements(a, run, [
      { metric: 'cost', measurement: m('Failed', 0, { threshold: 'result[0] < 1' }) },
      { metric: 'errors', measurement: m('Failed', 0, { threshold: 'result[0] < 1' }) },
    ]);
    expect(analysisVerdict(a, run)).toMatchObject({ kind: 'failed', metric: 'errors', action: 'rollback' });

    let review = startAnalysisRun(a, 0);
    review = recordMeasurement(a, review, 'cost', m('Failed', 0, { threshold: 'result[0] < 1' }));
    // The run ends at the first failure: the others are not measured any more.
    expect(dueMetrics(a, review, 0)).toEqual([]);
    expect(analysisVerdict(a, review)).toMatchObject({ kind: 'failed', metric: 'cost', action: 'pause-for-review' });
  });

  it('keeps at most 10 measurements per metric', () => {
    const a = analysisOf(metric({ successCondition: 'result[0] < 1', interval: '1s', count: 20 }));
    let run = startAnalysisRun(a, 0);
    for (let i = 0; i < 15; i++) run = recordMeasurement(a, run, 'm', m('Successful', i * 1000));
    expect(run.metrics[0]!.measurements).toHaveLength(10);
    expect(run.metrics[0]!.count).toBe(15);
  });
});
