/**
 * The candidate pairs a person should look at first, by request id: the least similar
 * answers, the most extreme length ratios, golden questions the candidate got wrong, and
 * answers that failed only on the candidate. Pure.
 */
import type { ShadowPairRecord } from '../../extproc/shadow/pair-log.js';

export type WorstReason = 'lowest similarity' | 'extreme length' | 'golden lost' | 'failed';

export interface WorstPair {
  reason: WorstReason;
  requestId: string;
  at: number;
  lengthRatio: number;
  similarity: number;
  latencyDeltaMs: number;
  stableChars: number;
  candidateChars: number;
  stableFinish: string | undefined;
  candidateFinish: string | undefined;
}

/** Pairs listed per reason. */
export const WORST_PER_REASON = 5;

export function worstPairs(candidate: readonly ShadowPairRecord[], perReason = WORST_PER_REASON): WorstPair[] {
  const answered = candidate.filter((r) => !r.stable.failed && !r.other.failed);
  const take = (reason: WorstReason, records: ShadowPairRecord[]) => records.slice(0, perReason).map((r) => row(reason, r));
  return [
    ...take('lowest similarity', [...answered].filter((r) => r.comparison.similarity < 1).sort((a, b) => a.comparison.similarity - b.comparison.similarity)),
    ...take('extreme length', [...answered].filter((r) => r.comparison.lengthRatio !== 1).sort((a, b) => Math.abs(Math.log(b.comparison.lengthRatio)) - Math.abs(Math.log(a.comparison.lengthRatio)))),
    ...take('golden lost', candidate.filter((r) => r.comparison.goldenCorrect === 'lost')),
    ...take('failed', candidate.filter((r) => r.comparison.failed === 'gained')),
  ];
}

function row(reason: WorstReason, r: ShadowPairRecord): WorstPair {
  return {
    reason,
    requestId: r.requestId,
    at: r.at,
    lengthRatio: r.comparison.lengthRatio,
    similarity: r.comparison.similarity,
    latencyDeltaMs: r.comparison.latencyDeltaMs,
    stableChars: r.stable.chars,
    candidateChars: r.other.chars,
    stableFinish: r.stable.finishReason,
    candidateFinish: r.other.finishReason,
  };
}
