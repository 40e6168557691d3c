import { describe, expect, it } from 'vitest';
import { mergeArgs, resolveArgs } from '../../controller/analysis/args.js';
import { MetricsQueryError, PrometheusProvider, type MetricsProvider } from '../../controller/analysis/prometheus.js';
import { takeMeasurement } from '../../controller/analysis/take-measurement.js';
import { metricSchema } from '../../controller/policy/schema.js';

// Response parsing only: the provider against a real Prometheus is an integration test.
function replying(status: number, body: unknown, seen: { url?: string; form?: URLSearchParams }[] = []): typeof fetch {
  return (async (url: string | URL | Request, init?: RequestInit) => {
    seen.push({ url: String(url), form: new URLSearchParams(init?.body as URLSearchParams) });
    return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status });
  }) as typeof fetch;
}

describe('PrometheusProvider', () => {
  it('turns an instant vector into numbers, including NaN and +Inf, and pins the time', async () => {
    const seen: { url?: string; form?: URLSearchParams }[] = [];
    const body = { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, '0.25'] }, { metric: {}, value: [1, 'NaN'] }, { metric: {}, value: [1, '+Inf'] }] } };
    const p = new PrometheusProvider({ address: 'http://prom.test:9090/', fetch: replying(200, body, seen) });
    const values = await p.measure('up', undefined, 1_700_000_000_123);
    expect(values[0]).toBe(0.25);
    expect(Number.isNaN(values[1])).toBe(true);
    expect(values[2]).toBe(Infinity);
    expect(seen[0]!.url).toBe('http://prom.test:9090/api/v1/query');
    expect(seen[0]!.form!.get('query')).toBe('up');
    expect(seen[0]!.form!.get('time')).toBe('1700000000.123');
  });

  it('measureSeries keeps each series\' labels (a histogram\'s le)', async () => {
    const body = { status: 'success', data: { resultType: 'vector', result: [{ metric: { le: '0.5' }, value: [1, '12'] }, { metric: { le: '+Inf' }, value: [1, '20'] }] } };
    const p = new PrometheusProvider({ address: 'http://p', fetch: replying(200, body) });
    expect(await p.measureSeries('sum by (le) (x_bucket)')).toEqual([
      { labels: { le: '0.5' }, value: 12 },
      { labels: { le: '+Inf' }, value: 20 },
    ]);
    expect(await p.measure('sum by (le) (x_bucket)')).toEqual([12, 20]);
  });

  it('a scalar gives one number, an empty vector none', async () => {
    expect(await new PrometheusProvider({ address: 'http://p', fetch: replying(200, { status: 'success', data: { resultType: 'scalar', result: [1, '3'] } }) }).measure('scalar(1)')).toEqual([3]);
    expect(await new PrometheusProvider({ address: 'http://p', fetch: replying(200, { status: 'success', data: { resultType: 'vector', result: [] } }) }).measure('nothing')).toEqual([]);
  });

  it('errors carry the query and the reason from the body', async () => {
    const p = new PrometheusProvider({ address: 'http://p', fetch: replying(400, { status: 'error', errorType: 'bad_data', error: 'parse error at char 5' }) });
    const err = await p.measure('sum(x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MetricsQueryError);
    expect((err as MetricsQueryError).query).toBe('sum(x');
    expect((err as Error).message).toBe('query "sum(x" failed: HTTP 400 bad_data: parse error at char 5');
  });

  it('a range vector is refused', async () => {
    const p = new PrometheusProvider({ address: 'http://p', fetch: replying(200, { status: 'success', data: { resultType: 'matrix', result: [] } }) });
    await expect(p.measure('x[5m]')).rejects.toThrow(/range vector/);
  });

  it('times out through AbortSignal', async () => {
    const hanging = ((_url: unknown, init?: RequestInit) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))))) as typeof fetch;
    const p = new PrometheusProvider({ address: 'http://p', timeoutMs: 20, fetch: hanging });
    await expect(p.measure('up')).rejects.toThrow(/within 20 ms/);
  });
});

describe('takeMeasurement', () => {
  const metric = metricSchema.parse({
    name: 'p95',
    provider: { prometheus: { query: 'lat{h="{{args.canary-hash}}"}' } },
    successCondition: 'result[0] <= 2 * stable[0]',
    minSamples: 10,
    samplesQuery: 'n{h="{{args.canary-hash}}"}',
  });
  const args = resolveArgs(mergeArgs([], []), { canaryHash: 'new', stableHash: 'old' });

  it('runs canary, baseline and samples queries at one instant and judges them', async () => {
    const asked: [string, number | undefined][] = [];
    const provider: MetricsProvider = {
      async measure(query, _signal, at) {
        asked.push([query, at]);
        if (query.startsWith('n{')) return [25];
        return query.includes('"new"') ? [3] : [1];
      },
    };
    const result = await takeMeasurement(metric, args, provider, () => 5000);
    expect(asked).toEqual([
      ['lat{h="new"}', 5000],
      ['lat{h="old"}', 5000],
      ['n{h="new"}', 5000],
    ]);
    expect(result).toMatchObject({ phase: 'Failed', value: [3], stable: [1], n: 25, threshold: 'result[0] <= 2 * stable[0]' });
  });

  it('a provider failure is an Error measurement with the reason', async () => {
    const provider: MetricsProvider = {
      measure: async (query) => {
        throw new MetricsQueryError(query, 'cannot reach http://p/api/v1/query: ECONNREFUSED');
      },
    };
    const result = await takeMeasurement(metric, args, provider, () => 0);
    expect(result.phase).toBe('Error');
    expect(result.message).toContain('ECONNREFUSED');
  });
});
