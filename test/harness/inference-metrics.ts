/**
 * A small Prometheus target for controller tests: serves the inference metrics extproc
 * exports (same names and labels: service, version, rollout_hash) with values each test
 * sets per rollout hash. Counters grow with wall-clock time at the set request rate, so
 * rate() and increase() over them see the ratios the test asked for.
 */
import { createServer, type Server } from 'node:http';

export interface VersionMetrics {
  version: string;
  requestsPerSecond: number;
  errorRatio: number;
  /** Every request takes this long: p95 lands inside the bucket holding it. */
  latencySeconds: number;
  quality: number;
  hallucinationRatio: number;
  costPerRequest: number;
  /** Share of requests an evaluator judged (fledge_quality_evaluated_total, the n of quality metrics). */
  evaluatedRatio: number;
}

export const HEALTHY: Omit<VersionMetrics, 'version'> = {
  requestsPerSecond: 1000,
  errorRatio: 0.001,
  latencySeconds: 0.3,
  quality: 0.93,
  hallucinationRatio: 0.01,
  costPerRequest: 0.002,
  evaluatedRatio: 0.1,
};

export const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8];

interface Series {
  metrics: VersionMetrics;
  lastAt: number;
  requests: number;
  errors: number;
  hallucinations: number;
  evaluated: number;
  cost: number;
  latencySum: number;
}

export interface InferenceMetricsEndpoint {
  /** host:port for a Prometheus scrape target. */
  target: string;
  set(hash: string, metrics: Partial<VersionMetrics> & { version: string }): void;
  /** Stops exporting the hash (its series go stale). */
  remove(hash: string): void;
  close(): Promise<void>;
}

export async function startInferenceMetrics(): Promise<InferenceMetricsEndpoint> {
  const series = new Map<string, Series>();
  const advance = (s: Series, now: number) => {
    const n = (s.metrics.requestsPerSecond * (now - s.lastAt)) / 1000;
    s.requests += n;
    s.errors += n * s.metrics.errorRatio;
    s.hallucinations += n * s.metrics.hallucinationRatio;
    s.evaluated += n * s.metrics.evaluatedRatio;
    s.cost += n * s.metrics.costPerRequest;
    s.latencySum += n * s.metrics.latencySeconds;
    s.lastAt = now;
  };
  const render = (): string => {
    const now = Date.now();
    const lines: string[] = [];
    const families: [string, string][] = [
      ['inference_requests_total', 'counter'],
      ['inference_errors_total', 'counter'],
      ['inference_hallucination_total', 'counter'],
      ['fledge_quality_evaluated_total', 'counter'],
      ['fledge_quality_hallucination_verdicts_total', 'counter'],
      ['inference_cost_total', 'counter'],
      ['inference_quality_score', 'gauge'],
      ['inference_latency_seconds', 'histogram'],
    ];
    for (const [name, type] of families) {
      lines.push(`# TYPE ${name} ${type}`);
      for (const [hash, s] of series) {
        advance(s, now);
        const labels = `service="model",version="${s.metrics.version}",rollout_hash="${hash}"`;
        switch (name) {
          case 'inference_requests_total':
            lines.push(`${name}{${labels}} ${s.requests}`);
            break;
          case 'inference_errors_total':
            lines.push(`${name}{${labels}} ${s.errors}`);
            break;
          case 'inference_hallucination_total':
            lines.push(`${name}{${labels}} ${s.hallucinations}`);
            break;
          case 'fledge_quality_evaluated_total':
            lines.push(`${name}{${labels},evaluator="golden-probe"} ${s.evaluated}`);
            break;
          case 'fledge_quality_hallucination_verdicts_total':
            // Unweighted verdicts: the judged answers found hallucinated.
            lines.push(`${name}{${labels},evaluator="golden-probe"} ${s.evaluated * s.metrics.hallucinationRatio}`);
            break;
          case 'inference_cost_total':
            lines.push(`${name}{${labels}} ${s.cost}`);
            break;
          case 'inference_quality_score':
            lines.push(`${name}{${labels}} ${s.metrics.quality}`);
            break;
          case 'inference_latency_seconds':
            for (const le of LATENCY_BUCKETS) lines.push(`${name}_bucket{${labels},le="${le}"} ${s.metrics.latencySeconds <= le ? s.requests : 0}`);
            lines.push(`${name}_bucket{${labels},le="+Inf"} ${s.requests}`, `${name}_sum{${labels}} ${s.latencySum}`, `${name}_count{${labels}} ${s.requests}`);
            break;
        }
      }
    }
    return `${lines.join('\n')}\n`;
  };
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/metrics')) res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(render());
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    target: `127.0.0.1:${port}`,
    set(hash, metrics) {
      const existing = series.get(hash);
      const now = Date.now();
      if (existing) {
        advance(existing, now);
        existing.metrics = { ...existing.metrics, ...metrics };
      } else {
        series.set(hash, { metrics: { ...HEALTHY, ...metrics }, lastAt: now, requests: 0, errors: 0, hallucinations: 0, evaluated: 0, cost: 0, latencySum: 0 });
      }
    },
    remove(hash) {
      series.delete(hash);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
