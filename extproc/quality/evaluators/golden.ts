import { readWhole } from '../observation.js';
import { checkGoldenAnswer } from './golden-set.js';
import type { Evaluator, Sample, Verdict } from './types.js';

/** A golden query answered: right scores 1, wrong scores 0 and is a hallucination. */
export const goldenEvaluator: Evaluator = {
  name: 'golden',
  evaluate(sample: Sample): Verdict | undefined {
    const { golden, observation } = sample;
    if (!golden || !answered(sample)) return undefined;
    const { ok } = checkGoldenAnswer(golden, observation.text);
    return { score: ok ? 1 : 0, hallucination: !ok };
  },
};

/** A complete 2xx answer; a cut, oversized or broken one is no evidence either way. */
export function answered(sample: Sample): boolean {
  const o = sample.observation;
  return sample.status !== undefined && sample.status < 300 && readWhole(o);
}
