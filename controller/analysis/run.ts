/**
 * An analysis run (Argo's AnalysisRun) as a serialisable value and pure functions over it:
 * when each metric is due, folding a measurement in, and the verdict.
 *
 * Argo semantics kept:
 * - Counts: Successful/Failed/Inconclusive measurements count toward `count`; Error does
 *   not, it counts toward consecutiveError, which any other phase resets.
 * - A metric is Failed when failed > failureLimit, Inconclusive when inconclusive >
 *   inconclusiveLimit, Error when consecutiveError > consecutiveErrorLimit (default 4),
 *   Successful when `count` measurements were taken. No count and no interval: one measurement.
 * - Timing: the first measurement at run start + initialDelay; then every `interval` after
 *   the previous one finished; after an Error, retry after `interval`, or 10s without one.
 * - Once a metric is Failed, Inconclusive or Error the run ends (Argo "terminates" it),
 *   taking no more measurements; its phase is the worst one.
 *
 * fledge's verdict differs from Argo in one place: Argo aborts the rollout when a run ends
 * in Error; fledge pauses it instead (see rollout-machine.ts). An Error means the metrics
 * backend failed, which says nothing about the model.
 */
import type { ResolvedAnalysis } from '../policy/policy.js';
import { durationMs, type Metric, type MetricAction } from '../policy/schema.js';
import { describeValues, type Measurement } from './measurement.js';

export type MetricPhase = 'Pending' | 'Running' | 'Successful' | 'Failed' | 'Inconclusive' | 'Error';
export type AnalysisPhase = MetricPhase;

export const DEFAULT_ERROR_RETRY_MS = 10_000;
/** Measurements kept per metric in the status (Argo keeps 10 too). */
export const MEASUREMENT_HISTORY = 10;

export interface MetricRunState {
  name: string;
  phase: MetricPhase;
  count: number;
  successful: number;
  failed: number;
  inconclusive: number;
  error: number;
  consecutiveError: number;
  /** Newest last; at most MEASUREMENT_HISTORY. */
  measurements: Measurement[];
  message?: string;
}

export interface AnalysisRunState {
  /** Epoch ms. */
  startedAt: number;
  phase: AnalysisPhase;
  metrics: MetricRunState[];
  message?: string;
}

export interface Timing {
  /** Divides every engine-timed duration (pauses, intervals, delays); 60 makes 10m last 10s. */
  timeScale?: number;
}

export type AnalysisVerdict =
  | { kind: 'running' }
  | { kind: 'successful' }
  | { kind: 'failed'; action: MetricAction; metric: string; measurement: Measurement; threshold: string; message: string }
  | { kind: 'inconclusive'; metric: string; message: string }
  | { kind: 'error'; metric: string; message: string };

export function startAnalysisRun(analysis: ResolvedAnalysis, now: number): AnalysisRunState {
  return {
    startedAt: now,
    phase: 'Running',
    metrics: analysis.metrics.map((m) => ({ name: m.name, phase: 'Pending', count: 0, successful: 0, failed: 0, inconclusive: 0, error: 0, consecutiveError: 0, measurements: [] })),
  };
}

export function isCompleted(phase: MetricPhase): boolean {
  return phase !== 'Pending' && phase !== 'Running';
}

/** Argo's EffectiveCount: no count and no interval means exactly one measurement. */
export function effectiveCount(metric: Metric): number | undefined {
  if (metric.count !== undefined) return metric.count;
  return metric.interval === undefined ? 1 : undefined;
}

export function scaled(ms: number, timing: Timing): number {
  const factor = timing.timeScale ?? 1;
  return factor > 0 ? ms / factor : ms;
}

/** When the metric's next measurement is due (epoch ms), or undefined when it takes no more. */
export function nextMeasurementAt(metric: Metric, state: MetricRunState, run: AnalysisRunState, timing: Timing = {}): number | undefined {
  if (isCompleted(state.phase) || isCompleted(run.phase)) return undefined;
  const last = state.measurements.at(-1);
  if (!last) return run.startedAt + scaled(metric.initialDelay === undefined ? 0 : durationMs(metric.initialDelay), timing);
  const limit = effectiveCount(metric);
  if (limit !== undefined && state.count >= limit) return undefined;
  const interval = metric.interval === undefined ? DEFAULT_ERROR_RETRY_MS : durationMs(metric.interval);
  return last.finishedAt + scaled(interval, timing);
}

/** Metrics whose measurement is due at `now`. */
export function dueMetrics(analysis: ResolvedAnalysis, run: AnalysisRunState, now: number, timing: Timing = {}): Metric[] {
  return analysis.metrics.filter((metric) => {
    const state = run.metrics.find((s) => s.name === metric.name);
    const at = state && nextMeasurementAt(metric, state, run, timing);
    return at !== undefined && at <= now;
  });
}

/** The earliest time any metric is due: when the caller should come back. */
export function nextRunWakeAt(analysis: ResolvedAnalysis, run: AnalysisRunState, timing: Timing = {}): number | undefined {
  let earliest: number | undefined;
  for (const metric of analysis.metrics) {
    const state = run.metrics.find((s) => s.name === metric.name);
    const at = state && nextMeasurementAt(metric, state, run, timing);
    if (at !== undefined && (earliest === undefined || at < earliest)) earliest = at;
  }
  return earliest;
}

export interface MetricMeasurement {
  metric: string;
  measurement: Measurement;
}

/** Folds one finished measurement into the run and reassesses the metric and the run. */
export function recordMeasurement(analysis: ResolvedAnalysis, run: AnalysisRunState, metricName: string, measurement: Measurement): AnalysisRunState {
  return recordMeasurements(analysis, run, [{ metric: metricName, measurement }]);
}

/**
 * Folds the measurements of one round (taken together) before judging the run, so a
 * rollback metric and a pause-for-review metric failing in the same round both count.
 */
export function recordMeasurements(analysis: ResolvedAnalysis, run: AnalysisRunState, round: readonly MetricMeasurement[]): AnalysisRunState {
  if (isCompleted(run.phase)) return run; // a late measurement for a finished run changes nothing
  let metrics = run.metrics;
  for (const { metric: metricName, measurement } of round) {
    const metric = analysis.metrics.find((m) => m.name === metricName);
    if (!metric) throw new Error(`analysis has no metric "${metricName}"`);
    metrics = metrics.map((state) => (state.name === metricName && !isCompleted(state.phase) ? foldMeasurement(metric, state, measurement) : state));
  }
  const updated: AnalysisRunState = { ...run, metrics };
  updated.phase = assessRun(analysis, updated);
  const verdict = analysisVerdict(analysis, updated);
  if (verdict.kind !== 'running' && verdict.kind !== 'successful') updated.message = verdict.message;
  return updated;
}

function foldMeasurement(metric: Metric, state: MetricRunState, measurement: Measurement): MetricRunState {
  const next: MetricRunState = { ...state, measurements: [...state.measurements, measurement].slice(-MEASUREMENT_HISTORY) };
  switch (measurement.phase) {
    case 'Successful':
      next.successful++;
      next.count++;
      next.consecutiveError = 0;
      break;
    case 'Failed':
      next.failed++;
      next.count++;
      next.consecutiveError = 0;
      break;
    case 'Inconclusive':
      next.inconclusive++;
      next.count++;
      next.consecutiveError = 0;
      break;
    case 'Error':
      next.error++;
      next.consecutiveError++;
      break;
  }
  next.phase = assessMetric(metric, next);
  if (measurement.message !== undefined) next.message = measurement.message;
  else delete next.message;
  return next;
}

export function assessMetric(metric: Metric, state: MetricRunState): MetricPhase {
  if (state.measurements.length === 0) return 'Pending';
  if (state.failed > metric.failureLimit) return 'Failed';
  if (state.inconclusive > metric.inconclusiveLimit) return 'Inconclusive';
  if (state.consecutiveError > metric.consecutiveErrorLimit) return 'Error';
  const limit = effectiveCount(metric);
  if (limit !== undefined && state.count >= limit) return 'Successful';
  return 'Running';
}

// Worst first. A Failed metric with action rollback outranks one that only asks for review.
const SEVERITY: Record<MetricPhase, number> = { Failed: 5, Error: 3, Inconclusive: 2, Successful: 1, Running: 0, Pending: 0 };

export function assessRun(analysis: ResolvedAnalysis, run: AnalysisRunState): AnalysisPhase {
  const phases = run.metrics.map((m) => m.phase);
  const terminal = phases.filter((p) => p === 'Failed' || p === 'Error' || p === 'Inconclusive');
  if (terminal.length) return terminal.reduce((a, b) => (SEVERITY[b] > SEVERITY[a] ? b : a));
  if (phases.length === analysis.metrics.length && phases.every((p) => p === 'Successful')) return 'Successful';
  return 'Running';
}

/** What the run means for the rollout; for a failure, which metric, value and threshold. */
export function analysisVerdict(analysis: ResolvedAnalysis, run: AnalysisRunState): AnalysisVerdict {
  if (run.phase === 'Successful') return { kind: 'successful' };
  if (!isCompleted(run.phase)) return { kind: 'running' };
  const ranked = run.metrics
    .map((state) => ({ state, metric: analysis.metrics.find((m) => m.name === state.name)! }))
    .filter(({ state }) => state.phase === 'Failed' || state.phase === 'Error' || state.phase === 'Inconclusive')
    .sort((a, b) => rank(b) - rank(a));
  const worst = ranked[0];
  if (!worst) return { kind: 'successful' };
  const { state, metric } = worst;
  if (state.phase === 'Failed') {
    const failing = [...state.measurements].reverse().find((m) => m.phase === 'Failed')!;
    const threshold = failing.threshold ?? metric.successCondition ?? metric.failureCondition ?? '';
    const limit = metric.failureLimit > 0 ? ` (${state.failed} failed measurements > failureLimit ${metric.failureLimit})` : '';
    return {
      kind: 'failed',
      action: metric.action,
      metric: metric.name,
      measurement: failing,
      threshold,
      message: `metric ${metric.name} failed: ${describeValues(failing)} breached ${threshold}${limit}`,
    };
  }
  if (state.phase === 'Error') {
    return { kind: 'error', metric: metric.name, message: `metric ${metric.name} errored ${state.consecutiveError} times in a row (consecutiveErrorLimit ${metric.consecutiveErrorLimit}): ${state.message ?? 'no detail'}` };
  }
  return { kind: 'inconclusive', metric: metric.name, message: `metric ${metric.name} inconclusive: ${state.message ?? 'no detail'}` };
}

function rank({ state, metric }: { state: MetricRunState; metric: Metric }): number {
  return SEVERITY[state.phase] + (state.phase === 'Failed' && metric.action === 'rollback' ? 1 : 0);
}
