/**
 * Evidence comparison on a real Prometheus: the count queries derived from the default
 * policy's error-rate and the seed's p95 query run as PromQL, per arm, and feed
 * evidenceDecision. The scrape target is the harness's inference-metrics endpoint (the
 * metric names and labels extproc exports), at 1,000 requests per second per version.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeArgs, resolveArgs } from '../../controller/analysis/args.js';
import { bucketsFromSeries, countQueriesFor, evidenceDecision, type ArmQueries } from '../../controller/analysis/evidence/evidence-decision.js';
import { PrometheusProvider } from '../../controller/analysis/prometheus.js';
import { metricSchema, type Metric } from '../../controller/policy/schema.js';
import { startInferenceMetrics, type InferenceMetricsEndpoint } from '../harness/inference-metrics.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';

const H = '{{args.canary-hash}}';
const ERROR_RATE: Metric = metricSchema.parse({
  name: 'error-rate',
  provider: { prometheus: { query: `(sum(rate(inference_errors_total{rollout_hash="${H}"}[10m])) or vector(0)) / sum(rate(inference_requests_total{rollout_hash="${H}"}[10m]))` } },
  successCondition: 'result[0] <= 0.01',
  compare: { margin: 0.005 },
});
const P95: Metric = metricSchema.parse({
  name: 'p95-latency',
  provider: { prometheus: { query: `histogram_quantile(0.95, rate(inference_latency_seconds_bucket{rollout_hash="${H}"}[10m]))` } },
  compare: { margin: 0.05 },
});

describe('evidence counts from a real Prometheus', () => {
  let metrics: InferenceMetricsEndpoint;
  let prometheus: RunningPrometheus;
  let provider: PrometheusProvider;

  beforeAll(async () => {
    metrics = await startInferenceMetrics();
    metrics.set('stable1', { version: 'v1', errorRatio: 0.001, latencySeconds: 0.3 });
    metrics.set('worse1', { version: 'v2', errorRatio: 0.05, latencySeconds: 1.5 });
    metrics.set('stable2', { version: 'v1', errorRatio: 0.001, latencySeconds: 0.3 });
    metrics.set('equal2', { version: 'v2', errorRatio: 0.001, latencySeconds: 0.3 });
    prometheus = await startPrometheus([metrics.target], 500);
    provider = new PrometheusProvider({ address: prometheus.url });
    // The first scrape comes when Prometheus has applied its targets; increase() needs two
    // samples of each series, and a few more give thousands of requests per version.
    await prometheus.waitForScrapes(1);
    await prometheus.waitForScrapes(4);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await metrics?.close();
  });

  const argsFor = (canaryHash: string, stableHash: string) => resolveArgs(mergeArgs([], []), { canaryHash, stableHash });

  const total = async (q: string, at: number) => (await provider.measure(q, undefined, at)).reduce((a, b) => a + b, 0);

  /** Both arms' rate counts, by the metric's rendered count queries. */
  async function rateCounts(metric: Metric, canaryHash: string, stableHash: string, at: number) {
    const queries = countQueriesFor(metric, argsFor(canaryHash, stableHash));
    const arm = async (q: ArmQueries) => {
      if (q.kind !== 'proportions') throw new Error(`expected rate counts, got ${q.kind}`);
      return { events: await total(q.events, at), trials: await total(q.trials, at) };
    };
    return { queries, canary: await arm(queries.canary), stable: await arm(queries.stable) };
  }

  /** Both arms' histogram buckets, by the metric's rendered bucket queries. */
  async function bucketCounts(metric: Metric, canaryHash: string, stableHash: string, at: number) {
    const queries = countQueriesFor(metric, argsFor(canaryHash, stableHash));
    const arm = async (q: ArmQueries) => {
      if (q.kind !== 'distribution') throw new Error(`expected buckets, got ${q.kind}`);
      return bucketsFromSeries(await provider.measureSeries(q.buckets, undefined, at));
    };
    return { queries, canary: await arm(queries.canary), stable: await arm(queries.stable) };
  }

  it('a canary with 5% errors against 0.1% is worse; an equal one is not worse', async () => {
    const at = Date.now();
    const w = await rateCounts(ERROR_RATE, 'worse1', 'stable1', at);
    expect(w.queries.canary).toMatchObject({ events: 'sum(increase(inference_errors_total{rollout_hash="worse1"}[10m]))' });
    expect(w.queries.stable).toMatchObject({ trials: 'sum(increase(inference_requests_total{rollout_hash="stable1"}[10m]))' });
    expect(w.canary.trials).toBeGreaterThan(1000);
    expect(w.canary.events / w.canary.trials).toBeCloseTo(0.05, 3);
    const worseDecision = evidenceDecision(ERROR_RATE, { kind: 'proportions', canary: w.canary, stable: w.stable });
    expect(worseDecision.verdict).toBe('worse');
    expect(worseDecision.interval[0]).toBeGreaterThan(0.03);

    const equal = await rateCounts(ERROR_RATE, 'equal2', 'stable2', at);
    const equalDecision = evidenceDecision(ERROR_RATE, { kind: 'proportions', canary: equal.canary, stable: equal.stable });
    expect(equalDecision.verdict).toBe('not-worse');
    expect(equalDecision.n.canary).toBeGreaterThan(1000);
  });

  it("latency buckets from the seed's p95 query: a slower canary is worse, an equal one is not", async () => {
    const at = Date.now();
    const s = await bucketCounts(P95, 'worse1', 'stable1', at);
    expect(s.queries.canary).toEqual({ kind: 'distribution', buckets: 'sum by (le) (increase(inference_latency_seconds_bucket{rollout_hash="worse1"}[10m]))' });
    expect(s.canary.map((b) => b.le)).toContain(Number.POSITIVE_INFINITY);
    const slowDecision = evidenceDecision(P95, { kind: 'distribution', canary: s.canary, stable: s.stable });
    expect(slowDecision.verdict).toBe('worse');
    expect(slowDecision.estimate).toBeCloseTo(1, 6); // every canary request is slower than every stable one

    const same = await bucketCounts(P95, 'equal2', 'stable2', at);
    const sameDecision = evidenceDecision(P95, { kind: 'distribution', canary: same.canary, stable: same.stable });
    expect(sameDecision.estimate).toBeCloseTo(0.5, 6);
    expect(sameDecision.verdict).toBe('not-worse');
  });
});
