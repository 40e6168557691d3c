import { answered } from './evaluators/golden.js';
import { looksLikeRefusal } from './evaluators/format.js';
import type { Sample } from './evaluators/types.js';

/** Reference-free signals of one sampled answer, counted per version (fledge_quality_signals_total). */
export type AnswerSignal = 'empty' | 'cut-off' | 'truncated' | 'refusal' | 'json-valid' | 'json-invalid';

/**
 * What can be said about an answer without knowing the right one: it was empty, the model
 * stopped at its token limit (finish_reason "length": cut-off), the stream was cut before
 * its end (truncated), it refused, and, when JSON was asked for, whether it parses.
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
  return signals;
}
