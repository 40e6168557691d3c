/** The default rubric: the judge answers with a JSON verdict, score and hallucination. */
export const DEFAULT_RUBRIC = [
  'You grade answers from an AI assistant.',
  'Score the answer to the question from 0 to 1: 1 = correct, complete, on topic and well formed;',
  '0.5 = partly correct or incomplete; 0 = wrong, off topic or harmful.',
  'hallucination is true when the answer states something false or invented as a fact, else false.',
  'Reply with JSON only, exactly these keys:',
  '{"score": <number from 0 to 1>, "hallucination": <true or false>, "reason": "<one short sentence>"}',
].join('\n');

export function judgeMessages(rubric: string, prompt: string, answer: string): { role: string; content: string }[] {
  return [
    { role: 'system', content: rubric },
    { role: 'user', content: `Question:\n${prompt}\n\nAnswer:\n${answer}` },
  ];
}

/** The verdict's shape, for judges that take response_format json_schema. */
export const VERDICT_JSON_SCHEMA = {
  type: 'object',
  properties: {
    score: { type: 'number' },
    hallucination: { type: 'boolean' },
    reason: { type: 'string' },
  },
  required: ['score', 'hallucination', 'reason'],
  additionalProperties: false,
} as const;

export interface JudgeVerdict {
  /** In [0, 1]. */
  score: number;
  hallucination: boolean;
  /** The judge's one-line reason ('' when it gave none), cut to REASON_MAX_CHARS. */
  reason: string;
}

/** Why a judge reply is no verdict; each is counted as a judge error, never turned into a score. */
export type JudgeOutputProblem = 'unparseable' | 'off-scale' | 'no-hallucination';

export type JudgeParse = { ok: true; verdict: JudgeVerdict } | { ok: false; problem: JudgeOutputProblem; detail: string };

export const REASON_MAX_CHARS = 200;

/**
 * The verdict in a judge's reply: a JSON object (alone, fenced, or the first {...} in some
 * prose) with `score` a number in [0, 1] and `hallucination` a boolean. Anything else is
 * a judge error: a bare number or a score on another scale is never guessed into [0, 1].
 */
export function parseJudgeVerdict(content: string): JudgeParse {
  const object = firstJsonObject(content);
  if (object === undefined) return { ok: false, problem: 'unparseable', detail: `no JSON object in the judge's reply: ${excerpt(content)}` };
  const score = object.score;
  if (typeof score !== 'number' || !Number.isFinite(score)) return { ok: false, problem: 'unparseable', detail: `"score" is not a number: ${excerpt(content)}` };
  if (score < 0 || score > 1) return { ok: false, problem: 'off-scale', detail: `"score" ${score} is outside [0, 1]` };
  const hallucination = toBoolean(object.hallucination);
  if (hallucination === undefined) return { ok: false, problem: 'no-hallucination', detail: `"hallucination" is not true or false: ${excerpt(content)}` };
  const reason = typeof object.reason === 'string' ? object.reason.trim().slice(0, REASON_MAX_CHARS) : '';
  return { ok: true, verdict: { score, hallucination, reason } };
}

/** The first JSON object in a judge's reply: alone, fenced, or the outermost {...} in some prose. */
export function firstJsonObject(content: string): Record<string, unknown> | undefined {
  const trimmed = content.trim().replace(/^```(?:json)?\s*|\s*```$/gu, '');
  const candidates = [trimmed];
  const start = trimmed.indexOf('{');
  const end = trimmed.lastIndexOf('}');
  if (start >= 0 && end > start) candidates.push(trimmed.slice(start, end + 1));
  for (const candidate of candidates) {
    try {
      const value: unknown = JSON.parse(candidate);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // try the next candidate
    }
  }
  return undefined;
}

function toBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/iu.test(value.trim())) return value.trim().toLowerCase() === 'true';
  return undefined;
}

export function excerpt(text: string): string {
  const flat = text.replace(/\s+/gu, ' ').trim();
  return JSON.stringify(flat.length > 120 ? `${flat.slice(0, 120)}…` : flat);
}
