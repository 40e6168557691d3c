/**
 * evidenceDecision: what a metric's `compare` block says about the canary, given the two
 * arms' counts. Pure: the engine fetches the counts (countQueriesFor renders the queries
 * per arm) and decides what a stage does with the verdict.
 *
 * Bad counts (negative, more events than trials, inconsistent buckets) never decide
 * anything: the verdict is `undecided` and `problem` says what was wrong, so a broken
 * exporter pauses a rollout instead of promoting it.
 */
import { substituteArgs, type ResolvedArgs } from '../args.js';
import { countQueries, type CountQueries } from '../../policy/compare.js';
import type { Metric } from '../../policy/schema.js';
import { compareDistributions, type Bucket } from './distribution.js';
import { compareStratifiedProportions, type ArmCounts, type CompareOptions, type ComparisonResult, type ComparisonSettings, type Stratum } from './proportions.js';

/**
 * A rate's counts: one pair (canary, stable), or one pair per stage so far (`stages`),
 * compared stratified by stage so that evidence accumulates over the rollout.
 */
export type EvidenceCounts =
  | { kind: 'proportions'; canary: ArmCounts; stable: ArmCounts }
  | { kind: 'proportions'; stages: readonly Stratum[] }
  | { kind: 'distribution'; canary: readonly Bucket[]; stable: readonly Bucket[] };

export interface EvidenceDecision extends ComparisonResult {
  metric: string;
  test: 'proportions' | 'distribution';
  margin: number;
  confidence: number;
  /** Set when the counts were unusable; the verdict is then undecided. */
  problem?: string;
}

export class EvidenceSpecError extends Error {
  override name = 'EvidenceSpecError';
}

function settingsOf(metric: Metric): ComparisonSettings {
  const c = metric.compare;
  if (!c) throw new EvidenceSpecError(`metric ${metric.name} has no compare block`);
  return { margin: c.margin, confidence: c.confidence, worse: c.worse, minSamples: c.minSamples };
}

/** The count queries of a compare metric (explicit or derived; derived ones over `window` when given), unrendered. */
export function metricCountQueries(metric: Metric, window?: string): CountQueries {
  if (!metric.compare) throw new EvidenceSpecError(`metric ${metric.name} has no compare block`);
  const queries = countQueries(metric.compare, metric.provider.prometheus.query, window);
  if ('error' in queries) throw new EvidenceSpecError(`metric ${metric.name}: compare: ${queries.error}`);
  return queries;
}

export type ArmQueries = { kind: 'proportions'; events: string; trials: string } | { kind: 'distribution'; buckets: string };

/** The count queries rendered for each arm; throws UnknownArgError like the metric's query. */
export function countQueriesFor(metric: Metric, args: ResolvedArgs, window?: string): { canary: ArmQueries; stable: ArmQueries } {
  const queries = metricCountQueries(metric, window);
  const render = (values: Record<string, string>): ArmQueries => {
    const what = (field: string) => `metric ${metric.name}'s compare.${field}`;
    return queries.kind === 'proportions'
      ? { kind: 'proportions', events: substituteArgs(queries.events, values, what('events')), trials: substituteArgs(queries.trials, values, what('trials')) }
      : { kind: 'distribution', buckets: substituteArgs(queries.buckets, values, what('buckets')) };
  };
  return { canary: render(args.canary), stable: render(args.baseline) };
}

export function evidenceDecision(metric: Metric, counts: EvidenceCounts, options: CompareOptions = {}): EvidenceDecision {
  const settings = settingsOf(metric);
  const expected = metricCountQueries(metric).kind;
  if (counts.kind !== expected) throw new EvidenceSpecError(`metric ${metric.name} compares ${expected}, but ${counts.kind} counts were given`);
  const common = { metric: metric.name, test: counts.kind, margin: settings.margin, confidence: settings.confidence };
  try {
    const result = counts.kind === 'proportions' ? compareStratifiedProportions(stagesOf(counts), settings, options) : compareDistributions(counts.canary, counts.stable, settings);
    return { ...common, ...result };
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    const n = { canary: Number.NaN, stable: Number.NaN };
    if (counts.kind === 'proportions') {
      n.canary = stagesOf(counts).reduce((a, s) => a + s.canary.trials, 0);
      n.stable = stagesOf(counts).reduce((a, s) => a + s.stable.trials, 0);
    }
    return { ...common, verdict: 'undecided', estimate: Number.NaN, interval: [Number.NaN, Number.NaN], n, reason: `unusable counts: ${err.message}`, problem: err.message };
  }
}

function stagesOf(counts: Extract<EvidenceCounts, { kind: 'proportions' }>): readonly Stratum[] {
  return 'stages' in counts ? counts.stages : [{ canary: counts.canary, stable: counts.stable }];
}

/** Cumulative buckets from `sum by (le)` series: the `le` label and the value of each. */
export function bucketsFromSeries(series: readonly { labels: Readonly<Record<string, string>>; value: number }[]): Bucket[] {
  return series.map(({ labels, value }) => {
    const le = labels.le;
    if (le === undefined) throw new RangeError(`a bucket series has no le label (${JSON.stringify(labels)})`);
    return { le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count: value };
  });
}
