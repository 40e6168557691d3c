/**
 * One look at the evidence of compare metrics: renders each metric's count queries per arm,
 * fetches both arms' counts at one instant, and decides (evidenceDecision). A failing query
 * decides nothing: the metric is undecided and its `problem` names the query, so a broken
 * metrics backend holds a stage (and in the end pauses it) rather than promoting it.
 */
import type { ResolvedArgs } from '../args.js';
import type { MetricsProvider } from '../prometheus.js';

/** One provider, or one per metric (a metric may name its own Prometheus). */
export type EvidenceProviderFor = MetricsProvider | ((metric: Metric) => MetricsProvider);
import type { Metric } from '../../policy/schema.js';
import { bucketsFromSeries, countQueriesFor, evidenceDecision, type ArmQueries, type EvidenceCounts, type EvidenceDecision } from './evidence-decision.js';
import type { ArmCounts } from './proportions.js';
import type { Bucket } from './distribution.js';

export interface LookInput {
  metrics: readonly Metric[];
  args: ResolvedArgs;
  provider: EvidenceProviderFor;
  /** Epoch ms: both arms are read at this instant. */
  at: number;
  /** PromQL range for derived count queries (the stage so far); the metric's own range when absent. */
  window?: string;
  signal?: AbortSignal;
}

export async function lookAtEvidence(input: LookInput): Promise<EvidenceDecision[]> {
  return Promise.all(input.metrics.map((metric) => decideMetric(metric, input)));
}

async function decideMetric(metric: Metric, look: LookInput): Promise<EvidenceDecision> {
  let counts: EvidenceCounts;
  const input = { ...look, provider: typeof look.provider === 'function' ? look.provider(metric) : look.provider };
  try {
    const queries = countQueriesFor(metric, input.args, input.window);
    if (queries.canary.kind === 'proportions' && queries.stable.kind === 'proportions') {
      const [canary, stable] = await Promise.all([armCounts(queries.canary, input), armCounts(queries.stable, input)]);
      counts = { kind: 'proportions', canary, stable };
    } else {
      const [canary, stable] = await Promise.all([armBuckets(queries.canary, input), armBuckets(queries.stable, input)]);
      counts = { kind: 'distribution', canary, stable };
    }
  } catch (err) {
    const problem = (err as Error).message;
    const c = metric.compare!;
    return { metric: metric.name, test: 'proportions', margin: c.margin, confidence: c.confidence, verdict: 'undecided', estimate: Number.NaN, interval: [Number.NaN, Number.NaN], n: { canary: Number.NaN, stable: Number.NaN }, reason: `no counts: ${problem}`, problem };
  }
  return evidenceDecision(metric, counts);
}

type Resolved = Omit<LookInput, 'provider'> & { provider: MetricsProvider };

async function armCounts(q: Extract<ArmQueries, { kind: 'proportions' }>, input: Resolved): Promise<ArmCounts> {
  const total = async (query: string) => (await input.provider.measure(query, input.signal, input.at)).reduce((a, b) => a + b, 0);
  const [events, trials] = await Promise.all([total(q.events), total(q.trials)]);
  return { events, trials };
}

async function armBuckets(q: ArmQueries, input: Resolved): Promise<Bucket[]> {
  if (q.kind !== 'distribution') throw new Error('a comparison mixes rate and histogram queries');
  if (!input.provider.measureSeries) throw new Error('the metrics provider cannot return labelled series, which histogram comparisons need');
  return bucketsFromSeries(await input.provider.measureSeries(q.buckets, input.signal, input.at));
}

/** A PromQL range covering `ms`, at least `minSeconds` (two scrapes must fall inside for increase()). */
export const DEFAULT_EVIDENCE_MIN_WINDOW_SECONDS = 60;

export function stageWindow(ms: number, minSeconds = DEFAULT_EVIDENCE_MIN_WINDOW_SECONDS): string {
  return `${Math.max(minSeconds, Math.ceil(ms / 1000))}s`;
}
