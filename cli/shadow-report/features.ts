/**
 * What the report measures of a pair: the continuous features whose distributions it
 * compares, and the boolean flips whose rates it counts, each with the rule that says
 * whether a pair has it at all (golden correctness only on golden questions). Pure.
 */
import type { ShadowPairRecord } from '../../extproc/shadow/pair-log.js';

export type ContinuousKey = 'lengthRatio' | 'latencyDeltaMs' | 'ttftDeltaMs' | 'outputTokensDelta' | 'similarity';

export interface ContinuousFeature {
  key: ContinuousKey;
  label: string;
  unit: string;
  /** The value with no difference between the two answers. */
  neutral: number;
  /** undefined when the pair does not have it (no TTFT on a non-streamed answer). */
  value(record: ShadowPairRecord): number | undefined;
}

/**
 * A failed answer's length, latency and text mean little (an empty 503 is not a short answer):
 * pairs with a failed side count only in the "failed" flip.
 */
const whenBothAnswered = (get: (r: ShadowPairRecord) => number | undefined) => (r: ShadowPairRecord) =>
  r.stable.failed || r.other.failed ? undefined : get(r);

export const CONTINUOUS_FEATURES: readonly ContinuousFeature[] = [
  { key: 'lengthRatio', label: 'length ratio', unit: '×', neutral: 1, value: whenBothAnswered((r) => r.comparison.lengthRatio) },
  { key: 'latencyDeltaMs', label: 'latency delta', unit: 'ms', neutral: 0, value: whenBothAnswered((r) => r.comparison.latencyDeltaMs) },
  { key: 'ttftDeltaMs', label: 'TTFT delta', unit: 'ms', neutral: 0, value: whenBothAnswered((r) => r.comparison.ttftDeltaMs ?? undefined) },
  { key: 'outputTokensDelta', label: 'output-token delta', unit: 'tokens', neutral: 0, value: whenBothAnswered((r) => r.comparison.outputTokensDelta ?? undefined) },
  { key: 'similarity', label: 'similarity', unit: '', neutral: 1, value: whenBothAnswered((r) => r.comparison.similarity) },
];

export type FlipKey = 'goldenLost' | 'goldenGained' | 'refusalGained' | 'jsonValidLost' | 'failedGained' | 'finishReasonChanged';

export interface FlipFeature {
  key: FlipKey;
  label: string;
  /** Whether the flip can happen in this pair: the denominator of its rate. */
  applies(record: ShadowPairRecord): boolean;
  flipped(record: ShadowPairRecord): boolean;
  /** A gain that is good news (golden correctness gained): the verdict does not warn about it. */
  good?: boolean;
}

// A field not measured is absent from the logged JSON (undefined; null from a hand-written entry).
const golden = (r: ShadowPairRecord) => r.stable.goldenCorrect != null && r.other.goldenCorrect != null;
const json = (r: ShadowPairRecord) => r.stable.jsonValid != null && r.other.jsonValid != null;

/** The most serious first: the verdict and the tables list them in this order. */
export const FLIP_FEATURES: readonly FlipFeature[] = [
  { key: 'failedGained', label: 'failed gained', applies: () => true, flipped: (r) => r.comparison.failed === 'gained' },
  { key: 'goldenLost', label: 'golden-correct lost', applies: golden, flipped: (r) => r.comparison.goldenCorrect === 'lost' },
  { key: 'goldenGained', label: 'golden-correct gained', applies: golden, flipped: (r) => r.comparison.goldenCorrect === 'gained', good: true },
  { key: 'jsonValidLost', label: 'JSON-valid lost', applies: json, flipped: (r) => r.comparison.jsonValid === 'lost' },
  { key: 'refusalGained', label: 'refusal gained', applies: () => true, flipped: (r) => r.comparison.refusal === 'gained' },
  { key: 'finishReasonChanged', label: 'finish reason changed', applies: () => true, flipped: (r) => r.comparison.finishReasonChanged },
];
