import { answered } from './evaluators/golden.js';
import { looksLikeRefusal } from './evaluators/format.js';
import type { Sample } from './evaluators/types.js';

/** Reference-free signals of one sampled answer, counted per version (fledge_quality_signals_total). */
export type AnswerSignal = 'empty' | 'cut-off' | 'truncated' | 'refusal' | 'json-valid' | 'json-invalid' | 'low-confidence';

/**
 * Below this confidence (exp of the mean token logprob) an answer counts as low-confidence.
 * Measured on SmolLM2-135M over 40 golden questions (make bench-model-confidence): healthy
 * (temperature 0) mean 0.75, 10% below 0.5; broken sampling (temperature 2) mean 0.20, 90%
 * below (docs/quality.md).
 */
export const LOW_CONFIDENCE = 0.5;

/**
 * What can be said about an answer without knowing the right one: it was empty, the model
 * stopped at its token limit (finish_reason "length": cut-off), the stream was cut before
 * its end (truncated), it refused, when JSON was asked for whether it parses, and, when the
 * server returned logprobs, whether the model was unsure of its own tokens (low-confidence).
 */
export function answerSignals(sample: Sample, jsonValid: boolean | undefined): AnswerSignal[] {
  const o = sample.observation;
  const signals: AnswerSignal[] = [];
  if (o.truncated) signals.push('truncated');
  if (!answered(sample)) return signals;
  if (o.text.trim() === '' && o.refusal === undefined) signals.push('empty');
  if (o.finishReason === 'length') signals.push('cut-off');
  if (o.refusal !== undefined || looksLikeRefusal(o.text)) signals.push('refusal');
  if (jsonValid !== undefined) signals.push(jsonValid ? 'json-valid' : 'json-invalid');
  if (o.confidence !== undefined && o.confidence < LOW_CONFIDENCE) signals.push('low-confidence');
  return signals;
}
