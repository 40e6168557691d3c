import type { Evaluator, Sample, Verdict } from './types.js';

export const QUALITY_SCORE_HEADER = 'x-quality-score';
export const HALLUCINATION_HEADER = 'x-hallucination';

/** Scores a model server or guardrail put in response headers. */
export const modelReportedEvaluator: Evaluator = {
  name: 'model-reported',
  evaluate(sample: Sample): Verdict | undefined {
    const verdict: Verdict = {};
    const score = Number(sample.responseHeaders.get(QUALITY_SCORE_HEADER) ?? Number.NaN);
    if (Number.isFinite(score) && score >= 0 && score <= 1) verdict.score = score;
    const flag = sample.responseHeaders.get(HALLUCINATION_HEADER)?.trim().toLowerCase();
    if (flag === 'true' || flag === '1' || flag === 'yes') verdict.hallucination = true;
    else if (flag === 'false' || flag === '0' || flag === 'no') verdict.hallucination = false;
    return verdict.score === undefined && verdict.hallucination === undefined ? undefined : verdict;
  },
};
