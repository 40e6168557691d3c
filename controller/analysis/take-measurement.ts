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
import type { EvidenceDecision } from './evidence/evidence-decision.js';
import { lookAtEvidence } from './evidence/look.js';
import { summarise } from './evidence/stage-rule.js';

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
  /** For a compare metric: the decision its evidence stage already reached (else one look now, over the metric's own range). */
  decided?: EvidenceDecision,
): Promise<Measurement> {
  const threshold = await takeThresholdMeasurement(metric, args, providerFor, clock, signal);
  if (!metric.compare) return threshold;
  const decision = decided ?? (await lookAtEvidence({ metrics: [metric], args, provider: providerFor, at: threshold.startedAt, ...(signal ? { signal } : {}) }))[0]!;
  return withComparison(metric, threshold, decision, clock());
}

/**
 * A compare metric's measurement: the comparison with the stable and the metric's own
 * conditions (hard limits) must both pass. Worse than the stable fails it; undecided is
 * Inconclusive (never a pass); a failed hard limit fails it whatever the comparison says.
 */
export function withComparison(metric: Metric, threshold: Measurement, decision: EvidenceDecision, finishedAt: number): Measurement {
  const compare = metric.compare!;
  const evidence = `compared with stable: ${decision.verdict}, ${summarise(decision)}`;
  const base: Measurement = { ...threshold, finishedAt, n: decision.n.canary };
  const hasConditions = metric.successCondition !== undefined || metric.failureCondition !== undefined;
  if (threshold.phase === 'Failed' || threshold.phase === 'Error') return { ...base, message: `${threshold.message ?? threshold.phase}; ${evidence}` };
  if (decision.verdict === 'worse') {
    return { ...base, phase: 'Failed', threshold: `compare: stable, margin ${compare.margin} (${compare.worse} is worse), confidence ${compare.confidence}`, message: `${decision.reason}; ${evidence}` };
  }
  if (decision.verdict === 'undecided') return { ...base, phase: 'Inconclusive', message: `not enough evidence: ${decision.reason}; ${evidence}` };
  // not worse than the stable: the hard limits decide what is left.
  if (hasConditions && threshold.phase !== 'Successful') return { ...base, message: `${threshold.message ?? threshold.phase}; ${evidence}` };
  return { ...base, phase: 'Successful', message: evidence };
}

async function takeThresholdMeasurement(metric: Metric, args: ResolvedArgs, providerFor: ProviderFor, clock: () => number, signal?: AbortSignal): Promise<Measurement> {
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
