/**
 * The pairwise judge: two answers to one prompt, and which is better. Shown as "Answer A" and
 * "Answer B"; the worker asks once in each order, so a judge that favours a position cannot
 * pass that bias off as a preference (pairwise-preference.ts combines the two replies).
 */
import { excerpt, firstJsonObject, REASON_MAX_CHARS } from './rubric.js';

export const DEFAULT_PAIRWISE_RUBRIC = [
  'You compare two answers an AI assistant gave to the same question.',
  'Decide which answer serves the person who asked better: correct facts first, then whether it',
  'answers what was asked, then clarity. Length alone is no merit. Where they are equally good',
  'or equally bad, say tie. The order in which the answers are shown means nothing.',
  'Reply with JSON only, exactly these keys:',
  '{"better": "A" or "B" or "tie", "reason": "<one short sentence>"}',
].join('\n');

export function pairwiseMessages(rubric: string, prompt: string, answerA: string, answerB: string): { role: string; content: string }[] {
  return [
    { role: 'system', content: rubric },
    { role: 'user', content: `Question:\n${prompt}\n\nAnswer A:\n${answerA}\n\nAnswer B:\n${answerB}` },
  ];
}

/** The pairwise verdict's shape, for judges that take response_format json_schema. */
export const PAIRWISE_JSON_SCHEMA = {
  type: 'object',
  properties: {
    better: { type: 'string', enum: ['A', 'B', 'tie'] },
    reason: { type: 'string' },
  },
  required: ['better', 'reason'],
  additionalProperties: false,
} as const;

/** Which shown answer the judge preferred, by position. */
export type PositionVerdict = 'A' | 'B' | 'tie';

export interface PairwiseVerdict {
  better: PositionVerdict;
  /** The judge's one-line reason ('' when it gave none), cut to REASON_MAX_CHARS. */
  reason: string;
}

/** Why a pairwise reply is no verdict: `unparseable` (no JSON object), `no-preference` (no "better" of A, B or tie). */
export type PairwiseProblem = 'unparseable' | 'no-preference';

export type PairwiseParse = { ok: true; verdict: PairwiseVerdict } | { ok: false; problem: PairwiseProblem; detail: string };

/**
 * The verdict in a pairwise reply: a JSON object (alone, fenced, or in prose) whose "better"
 * is exactly A, B or tie (case and surrounding spaces aside). Nothing is guessed: "Answer A",
 * "both", 1, a missing key are judge errors, never a preference.
 */
export function parsePairwiseVerdict(content: string): PairwiseParse {
  const object = firstJsonObject(content);
  if (object === undefined) return { ok: false, problem: 'unparseable', detail: `no JSON object in the judge's reply: ${excerpt(content)}` };
  const better = positionOf(object.better);
  if (better === undefined) return { ok: false, problem: 'no-preference', detail: `"better" is not "A", "B" or "tie": ${excerpt(content)}` };
  const reason = typeof object.reason === 'string' ? object.reason.trim().slice(0, REASON_MAX_CHARS) : '';
  return { ok: true, verdict: { better, reason } };
}

function positionOf(value: unknown): PositionVerdict | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.trim().toLowerCase();
  return v === 'a' ? 'A' : v === 'b' ? 'B' : v === 'tie' ? 'tie' : undefined;
}
