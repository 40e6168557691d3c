import { answered } from './golden.js';
import { validateJson } from './json-schema.js';
import type { Evaluator, Sample, Verdict } from './types.js';

const REFUSAL = /^\s*(?:i'?m sorry|i am sorry|sorry, but|i can(?:no|')t (?:help|assist|provide|comply)|i cannot (?:help|assist|provide|comply)|i am unable to|i'm unable to|as an ai\b)/iu;

export function looksLikeRefusal(text: string): boolean {
  return REFUSAL.test(text.slice(0, 200));
}

/**
 * Format: when the request asked for JSON, the answer must parse (and fit the schema it
 * gave): 1 or 0. Refusals (the model's refusal field, or a refusal opening) are reported
 * as such; they carry no score, since refusing can be the right answer.
 */
export const formatEvaluator: Evaluator = {
  name: 'format',
  evaluate(sample: Sample): Verdict | undefined {
    if (!answered(sample)) return undefined;
    const { observation, request } = sample;
    const verdict: Verdict = {};
    if (observation.refusal !== undefined || looksLikeRefusal(observation.text)) verdict.refusal = true;
    if (request?.wantsJson && verdict.refusal !== true) verdict.score = jsonScore(observation.text, request.schema);
    return verdict.refusal === undefined && verdict.score === undefined ? undefined : verdict;
  },
};

function jsonScore(text: string, schema: unknown): number {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 0;
  }
  return schema === undefined || validateJson(schema, value) === undefined ? 1 : 0;
}
