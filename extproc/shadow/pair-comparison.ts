/**
 * One shadow pair: the stable's answer to a user request and the candidate's answer to its
 * mirrored copy, compared feature by feature. The same comparison of the stable against a
 * second answer of its own (the noise floor, Diffy's lesson) tells which differences are the
 * candidate's and which are the model's everyday variation. Pure.
 */
import { similarity, type AnswerFeatures } from './answer-features.js';

/** A boolean feature that changed between the two answers: the candidate gained it, or lost it. */
export type Flip = 'gained' | 'lost' | undefined;

export interface PairComparison {
  /** candidate chars / stable chars (both +1, so empty answers compare). */
  lengthRatio: number;
  latencyDeltaMs: number;
  ttftDeltaMs: number | undefined;
  outputTokensDelta: number | undefined;
  finishReasonChanged: boolean;
  refusal: Flip;
  jsonValid: Flip;
  goldenCorrect: Flip;
  failed: Flip;
  /** Estimated Jaccard similarity of the two answers' word pairs, 0..1. */
  similarity: number;
}

export function comparePair(stable: AnswerFeatures, candidate: AnswerFeatures): PairComparison {
  const delta = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : b - a);
  return {
    lengthRatio: (candidate.chars + 1) / (stable.chars + 1),
    latencyDeltaMs: candidate.latencyMs - stable.latencyMs,
    ttftDeltaMs: delta(stable.ttftMs, candidate.ttftMs),
    outputTokensDelta: delta(stable.outputTokens, candidate.outputTokens),
    finishReasonChanged: stable.finishReason !== candidate.finishReason,
    refusal: flip(stable.refusal, candidate.refusal),
    jsonValid: flip(stable.jsonValid, candidate.jsonValid),
    goldenCorrect: flip(stable.goldenCorrect, candidate.goldenCorrect),
    failed: flip(stable.failed, candidate.failed),
    similarity: similarity(stable.signature, candidate.signature),
  };
}

function flip(stable: boolean | undefined, candidate: boolean | undefined): Flip {
  if (stable === undefined || candidate === undefined || stable === candidate) return undefined;
  return candidate ? 'gained' : 'lost';
}
