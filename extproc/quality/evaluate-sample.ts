/**
 * Runs the evaluators on one finished sample. Pure (no metrics, no I/O), so the recorder runs
 * it inline for short answers and the quality worker thread runs it for long ones.
 */
import { formatEvaluator } from './evaluators/format.js';
import { goldenEvaluator } from './evaluators/golden.js';
import { modelReportedEvaluator } from './evaluators/model-reported.js';
import type { Evaluator, Sample, Verdict } from './evaluators/types.js';

/** The built-in evaluators, by name in the worker thread. */
export const EVALUATORS: readonly Evaluator[] = [goldenEvaluator, formatEvaluator, modelReportedEvaluator];

/** Answers up to this many characters are evaluated where they are recorded (well under a millisecond). */
export const INLINE_EVALUATION_CHARS = 64 * 1024;

export interface NamedVerdict {
  name: string;
  verdict: Verdict;
}

export interface Evaluation {
  verdicts: NamedVerdict[];
  /** Evaluators that threw, with what they said. */
  failed: { evaluator: string; message: string }[];
}

export function evaluateSample(sample: Sample, evaluators: readonly Evaluator[]): Evaluation {
  const evaluation: Evaluation = { verdicts: [], failed: [] };
  for (const evaluator of evaluators) {
    try {
      const verdict = evaluator.evaluate(sample);
      if (verdict) evaluation.verdicts.push({ name: evaluator.name, verdict });
    } catch (err) {
      evaluation.failed.push({ evaluator: evaluator.name, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return evaluation;
}
