import { checkGoldenAnswer, type GoldenEntry } from '../quality/evaluators/golden-set.js';
import { validateJson } from '../quality/evaluators/json-schema.js';
import type { RequestFacts } from '../quality/openai-request.js';
import { readWhole, type Observation } from '../quality/observation.js';
import { answerFeatures, type AnswerFeatures } from './answer-features.js';

/**
 * One answer's features, judged the same way for the stable's answer to the user and a
 * copy's answer: golden correctness when the prompt is a golden question, JSON validity
 * (against the schema, when one was asked for) when JSON was asked for.
 */
export function featuresOfAnswer(observation: Observation, status: number | undefined, latencyMs: number, request: RequestFacts | undefined, golden: GoldenEntry | undefined): AnswerFeatures {
  const complete = status !== undefined && status < 300 && readWhole(observation);
  return answerFeatures({
    observation,
    status,
    latencyMs,
    ...(golden && complete ? { goldenCorrect: checkGoldenAnswer(golden, observation.text).ok } : {}),
    ...(request?.wantsJson ? { jsonValid: complete && jsonValid(observation.text, request.schema) } : {}),
  });
}

function jsonValid(text: string, schema: unknown): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  return schema === undefined || validateJson(schema, value) === undefined;
}
