/** The default rubric: the judge answers with JSON holding a score in [0, 1]. */
export const DEFAULT_RUBRIC = [
  'You grade answers from an AI assistant.',
  'Score the answer to the question from 0 to 1: 1 = correct, complete, on topic and well formed;',
  '0.5 = partly correct or incomplete; 0 = wrong, invented facts, off topic or harmful.',
  'Reply with JSON only: {"score": <number between 0 and 1>, "reason": "<one sentence>"}.',
].join('\n');

export function judgeMessages(rubric: string, prompt: string, answer: string): { role: string; content: string }[] {
  return [
    { role: 'system', content: rubric },
    { role: 'user', content: `Question:\n${prompt}\n\nAnswer:\n${answer}` },
  ];
}

/** The score in a judge's reply: {"score": x} JSON, or failing that the first number in [0,1]. */
export function parseJudgeScore(content: string): number | undefined {
  const trimmed = content.trim().replace(/^```(?:json)?\s*|\s*```$/gu, '');
  try {
    const value: unknown = JSON.parse(trimmed);
    if (typeof value === 'object' && value !== null && 'score' in value) {
      const score = Number((value as { score: unknown }).score);
      return Number.isFinite(score) && score >= 0 && score <= 1 ? score : undefined;
    }
  } catch {
    // not JSON: look for a bare number
  }
  const match = /(?<![\d.])(0(?:\.\d+)?|1(?:\.0+)?)(?![\d.])/u.exec(trimmed);
  return match ? Number(match[1]) : undefined;
}
