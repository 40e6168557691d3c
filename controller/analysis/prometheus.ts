/**
 * The metrics provider interface and its Prometheus implementation (instant queries over
 * HTTP, `/api/v1/query`). A failure says which query failed and why (HTTP status, the
 * body's error, a timeout), since it ends up in the rollout's status.
 */

export interface MetricsProvider {
  /**
   * Runs an instant query and returns its values: one per series of a vector, one for a
   * scalar, none for an empty vector. `at` (epoch ms) pins the evaluation time so that the
   * canary and stable queries of one measurement see the same window.
   */
  measure(query: string, signal?: AbortSignal, at?: number): Promise<number[]>;
  /** The same query with each series' labels (a histogram's `le`); needed by distribution comparisons. */
  measureSeries?(query: string, signal?: AbortSignal, at?: number): Promise<Sample[]>;
}

export class MetricsQueryError extends Error {
  override name = 'MetricsQueryError';
  constructor(
    readonly query: string,
    readonly reason: string,
  ) {
    super(`query ${oneLine(query)} failed: ${reason}`);
  }
}

export interface PrometheusOptions {
  /** Base URL, e.g. http://127.0.0.1:9090 (a path prefix is kept). */
  address: string;
  /** Per query; default 10s (Argo's Prometheus provider default is also short). */
  timeoutMs?: number;
  /** For tests; defaults to the global fetch. */
  fetch?: typeof fetch;
}

export class PrometheusProvider implements MetricsProvider {
  private readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: PrometheusOptions) {
    this.endpoint = `${options.address.replace(/\/+$/, '')}/api/v1/query`;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  async measure(query: string, signal?: AbortSignal, at?: number): Promise<number[]> {
    return (await this.measureSeries(query, signal, at)).map((sample) => sample.value);
  }

  /**
   * The same instant query, keeping each series' labels (a histogram's `le`, for the
   * evidence tests); a scalar is one sample without labels.
   */
  async measureSeries(query: string, signal?: AbortSignal, at?: number): Promise<Sample[]> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const form = new URLSearchParams({ query });
    if (at !== undefined) form.set('time', (at / 1000).toFixed(3));
    let response: Response;
    let text: string;
    try {
      // POST: long PromQL would not fit a URL; Prometheus accepts form-encoded queries.
      response = await this.fetchImpl(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form,
        signal: combined,
      });
      text = await response.text();
    } catch (err) {
      if (timeout.aborted) throw new MetricsQueryError(query, `no answer from ${this.endpoint} within ${this.timeoutMs} ms`);
      if (signal?.aborted) throw new MetricsQueryError(query, 'cancelled');
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new MetricsQueryError(query, `cannot reach ${this.endpoint}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new MetricsQueryError(query, `HTTP ${response.status}, not JSON: ${text.slice(0, 200)}`);
    }
    const parsed = body as { status?: string; error?: string; errorType?: string; data?: { resultType?: string; result?: unknown } };
    if (!response.ok || parsed.status !== 'success') {
      throw new MetricsQueryError(query, `HTTP ${response.status}${parsed.errorType ? ` ${parsed.errorType}` : ''}: ${parsed.error ?? text.slice(0, 200)}`);
    }
    return samplesOf(query, parsed.data?.resultType, parsed.data?.result);
  }
}

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** Prometheus sends sample values as strings, including "NaN", "+Inf" and "-Inf". */
export function parseSampleValue(text: unknown): number {
  if (text === 'NaN') return Number.NaN;
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  const n = typeof text === 'string' && text.trim() !== '' ? Number(text) : Number.NaN;
  return n;
}

function samplesOf(query: string, resultType: string | undefined, result: unknown): Sample[] {
  switch (resultType) {
    case 'vector':
      if (!Array.isArray(result)) break;
      return result.map((sample) => {
        const s = sample as { metric?: Record<string, string>; value?: [number, string] };
        return { labels: { ...(s.metric ?? {}) }, value: parseSampleValue(s.value?.[1]) };
      });
    case 'scalar':
      if (!Array.isArray(result)) break;
      return [{ labels: {}, value: parseSampleValue(result[1]) }];
    case 'matrix':
      throw new MetricsQueryError(query, 'the query returns a range vector; analysis needs an instant vector or a scalar');
    case 'string':
      throw new MetricsQueryError(query, 'the query returns a string, not a number');
  }
  throw new MetricsQueryError(query, `unexpected response shape (resultType ${JSON.stringify(resultType)})`);
}

function oneLine(query: string): string {
  const flat = query.replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > 300 ? `${flat.slice(0, 300)}…` : flat);
}
