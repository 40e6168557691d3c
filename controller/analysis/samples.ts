/**
 * n, the evaluated samples behind a measurement, for metrics that do not say how to count
 * them (no samplesQuery, e.g. the seed's template verbatim): derived from the rendered
 * query. AI-quality metrics (quality score, hallucinations) count the answers an evaluator
 * gave a verdict on (fledge_quality_evaluated_total, golden probes included); metrics over
 * the request series (errors, latency, cost, tokens) count user requests. Same rollout
 * hash, same range as the query (10m when it has none).
 */
const QUALITY_SERIES = /\b(inference_quality_score|inference_hallucination_total)\b/;
const REQUEST_SERIES = /\b(inference_requests_total|inference_errors_total|inference_latency_seconds(?:_bucket|_count|_sum)?|inference_cost_total|inference_tokens_total|inference_time_to_first_token_seconds(?:_bucket)?)\b/;

export function evaluatedSamplesQuery(rolloutHash: string, range = '10m'): string {
  return `sum(increase(fledge_quality_evaluated_total{rollout_hash="${rolloutHash}"}[${range}]))`;
}

export function requestSamplesQuery(rolloutHash: string, range = '10m'): string {
  return `sum(increase(inference_requests_total{rollout_hash="${rolloutHash}"}[${range}]))`;
}

/** The query counting n for a rendered metric query, or undefined when it cannot be told. */
export function derivedSamplesQuery(query: string): string | undefined {
  const hash = /rollout_hash\s*=\s*"([^"]+)"/.exec(query)?.[1];
  if (hash === undefined) return undefined;
  const range = /\[(\d+[smhdw])\]/.exec(query)?.[1] ?? '10m';
  if (QUALITY_SERIES.test(query)) return evaluatedSamplesQuery(hash, range);
  if (REQUEST_SERIES.test(query)) return requestSamplesQuery(hash, range);
  return undefined;
}
