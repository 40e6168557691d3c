/**
 * One measurement of one metric: provider values in, a phase out. Pure.
 *
 * Follows Argo's EvaluateResult: with only a successCondition, not meeting it is a failure;
 * with only a failureCondition, not meeting it is a success; with both, meeting neither is
 * Inconclusive; with neither, any value is a success. A condition that cannot be evaluated
 * (index out of range, not a boolean) makes the measurement Error. NaN is handed to the
 * condition as it is, as Argo does: `result[0] < 0.01` is false for NaN (→ Failed), and a
 * policy that wants otherwise says so with isNaN().
 *
 * fledge's additions come first: too few samples, or no data at all (an empty vector, for
 * the canary or for the stable baseline), is Inconclusive: never a pass, never a failure.
 */
import type { Metric } from '../policy/schema.js';
import { compileCondition, ConditionEvaluationError } from './condition.js';

export type MeasurementPhase = 'Successful' | 'Failed' | 'Inconclusive' | 'Error';

export interface Measurement {
  phase: MeasurementPhase;
  /** Epoch milliseconds. */
  startedAt: number;
  finishedAt: number;
  /** The canary query's values. */
  value?: number[];
  /** The same query for the stable version, when a condition uses `stable`. */
  stable?: number[];
  /** n: the evaluated samples behind this measurement (answers with a verdict, or requests), when counted. */
  n?: number;
  /** The condition that decided a Failed measurement, as written in the template. */
  threshold?: string;
  message?: string;
}

export interface MeasurementInput {
  result: number[];
  stable?: number[];
  samples?: number;
}

export interface MeasurementTimes {
  startedAt: number;
  finishedAt: number;
}

/** Whether the metric needs the baseline query (a condition reads `stable`). */
export function metricUsesStable(metric: Metric): boolean {
  return [metric.successCondition, metric.failureCondition].some((c) => c !== undefined && compileCondition(c).variables.has('stable'));
}

export function judgeMeasurement(metric: Metric, input: MeasurementInput, times: MeasurementTimes): Measurement {
  const base: Measurement = { phase: 'Successful', ...times, value: [...input.result] };
  if (input.stable) base.stable = [...input.stable];
  if (input.samples !== undefined) base.n = input.samples;
  const verdict = (phase: MeasurementPhase, message?: string, threshold?: string): Measurement => ({
    ...base,
    phase,
    ...(message === undefined ? {} : { message }),
    ...(threshold === undefined ? {} : { threshold }),
  });

  if (metric.minSamples !== undefined) {
    const n = input.samples;
    if (n === undefined || !Number.isFinite(n) || n < metric.minSamples) {
      return verdict('Inconclusive', `only ${n === undefined || Number.isNaN(n) ? 'no' : formatNumber(n)} samples; at least ${metric.minSamples} needed`);
    }
  }
  if (input.result.length === 0) return verdict('Inconclusive', 'the query returned no data');
  const usesStable = metricUsesStable(metric);
  if (usesStable && (!input.stable || input.stable.length === 0)) return verdict('Inconclusive', 'the stable baseline query returned no data');

  const vars = usesStable ? { result: input.result, stable: input.stable! } : { result: input.result };
  let success = false;
  let failure = false;
  try {
    if (metric.successCondition !== undefined) success = compileCondition(metric.successCondition).evaluate(vars);
    if (metric.failureCondition !== undefined) failure = compileCondition(metric.failureCondition).evaluate(vars);
  } catch (err) {
    if (err instanceof ConditionEvaluationError) return verdict('Error', err.message);
    throw err;
  }

  const hasSuccess = metric.successCondition !== undefined;
  const hasFailure = metric.failureCondition !== undefined;
  if (!hasSuccess && !hasFailure) {
    // A compare-only metric passes on evidence (evidenceDecision), never on a value alone.
    if (metric.compare) return verdict('Inconclusive', `metric ${metric.name} is judged by its comparison with the stable, not by a threshold`);
    return verdict('Successful');
  }
  if (hasSuccess && !hasFailure) failure = !success;
  if (!hasSuccess && hasFailure) success = !failure;

  if (failure) {
    // The deciding condition: the failureCondition that held, or else the unmet successCondition.
    if (hasFailure) return verdict('Failed', `${describeValues(base)} met the failure condition ${metric.failureCondition}`, metric.failureCondition);
    return verdict('Failed', `${describeValues(base)} did not meet ${metric.successCondition}`, metric.successCondition);
  }
  if (!success) return verdict('Inconclusive', `${describeValues(base)} met neither the success nor the failure condition`);
  return verdict('Successful');
}

export function errorMeasurement(message: string, times: MeasurementTimes): Measurement {
  return { phase: 'Error', ...times, message };
}

/** "value 0.034 (stable 0.012)" for messages and events. */
export function describeValues(m: Pick<Measurement, 'value' | 'stable'>): string {
  const vec = (v: number[] | undefined) => (v === undefined ? '' : v.length === 1 ? formatNumber(v[0]!) : `[${v.map(formatNumber).join(', ')}]`);
  return `value ${vec(m.value) || 'none'}${m.stable ? ` (stable ${vec(m.stable) || 'none'})` : ''}`;
}

export function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : '-Inf';
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(4)));
}
