/**
 * Takes one measurement of one metric: renders its queries with the run's args, asks the
 * provider (canary, and when needed the stable baseline and the sample count, all pinned
 * to the same instant), and judges the values. Any provider or argument failure becomes an
 * Error measurement carrying the reason; it never throws for those.
 */
import type { Metric } from '../policy/schema.js';
import { substituteArgs, UnknownArgError, type ResolvedArgs } from './args.js';
import { errorMeasurement, judgeMeasurement, metricUsesStable, type Measurement } from './measurement.js';
import type { MetricsProvider } from './prometheus.js';
import { derivedSamplesQuery } from './samples.js';

export interface RenderedQueries {
  query: string;
  baselineQuery?: string;
  samplesQuery?: string;
}

/** The queries a measurement of this metric runs; throws UnknownArgError. */
export function renderQueries(metric: Metric, args: ResolvedArgs): RenderedQueries {
  const rendered: RenderedQueries = { query: substituteArgs(metric.provider.prometheus.query, args.canary, `metric ${metric.name}'s query`) };
  if (metricUsesStable(metric)) rendered.baselineQuery = substituteArgs(metric.provider.prometheus.query, args.baseline, `metric ${metric.name}'s query`);
  // n for every measurement: the metric's own count, or one derived from its query.
  const samplesQuery = metric.samplesQuery !== undefined ? substituteArgs(metric.samplesQuery, args.canary, `metric ${metric.name}'s samplesQuery`) : derivedSamplesQuery(rendered.query);
  if (samplesQuery !== undefined) rendered.samplesQuery = samplesQuery;
  return rendered;
}

export type ProviderFor = MetricsProvider | ((metric: Metric) => MetricsProvider);

export async function takeMeasurement(
  metric: Metric,
  args: ResolvedArgs,
  providerFor: ProviderFor,
  clock: () => number,
  signal?: AbortSignal,
): Promise<Measurement> {
  const startedAt = clock();
  let queries: RenderedQueries;
  try {
    queries = renderQueries(metric, args);
  } catch (err) {
    if (err instanceof UnknownArgError) return errorMeasurement(err.message, { startedAt, finishedAt: clock() });
    throw err;
  }
  const provider = typeof providerFor === 'function' ? providerFor(metric) : providerFor;
  try {
    const [result, stable, samples] = await Promise.all([
      provider.measure(queries.query, signal, startedAt),
      queries.baselineQuery === undefined ? undefined : provider.measure(queries.baselineQuery, signal, startedAt),
      queries.samplesQuery === undefined ? undefined : countSamples(provider, queries.samplesQuery, metric, signal, startedAt),
    ]);
    const input = {
      result,
      ...(stable === undefined ? {} : { stable }),
      // A sample-count query with no series means no samples.
      ...(samples === undefined ? {} : { samples: samples.length === 0 ? 0 : samples.reduce((a, b) => a + b, 0) }),
    };
    return judgeMeasurement(metric, input, { startedAt, finishedAt: clock() });
  } catch (err) {
    return errorMeasurement((err as Error).message, { startedAt, finishedAt: clock() });
  }
}

/** A derived count that fails (n is informational there) leaves n out rather than failing the measurement. */
async function countSamples(provider: MetricsProvider, query: string, metric: Metric, signal: AbortSignal | undefined, at: number): Promise<number[] | undefined> {
  if (metric.samplesQuery !== undefined) return provider.measure(query, signal, at);
  return provider.measure(query, signal, at).catch(() => undefined);
}
