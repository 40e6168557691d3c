/**
 * What a simulated model answers to a golden set's questions: for each entry a right
 * answer built from its expectation (a regex's first alternative), checked by the real
 * golden evaluator before use, and a wrong one it rejects. The sim answers with the wrong
 * one at its hallucination knob's rate; every quality figure then comes from extproc
 * evaluating the answer text, as with a real model.
 */
import { GoldenSet, checkGoldenAnswer, type GoldenEntry } from '../../extproc/quality/evaluators/golden-set.js';

const WRONG = 'I am not sure; it may be 42.';

/** The words a regex expectation asks for: word boundaries dropped, each group's first alternative kept. */
function answerFor(entry: GoldenEntry): string | undefined {
  const { regex, facts } = entry.expect;
  if (facts?.length) return facts.join(', ');
  if (regex === undefined) return undefined;
  const words = regex
    .replaceAll('\\b', '')
    .replaceAll('(?:', '(')
    .replace(/\(([^()|]*)(\|[^()]*)?\)/g, '$1')
    .replace(/\|.*$/, '')
    .replace(/\\s[+*]?/g, ' ')
    .replace(/[?*+]/g, '')
    .replaceAll('\\', '');
  return `The answer is ${words}.`;
}

export function simGoldenAnswers(goldenFile: string): { prompt: string; answer: string; wrongAnswer: string }[] {
  return GoldenSet.load(goldenFile).entries.map((entry) => {
    const answer = answerFor(entry);
    if (answer === undefined || !checkGoldenAnswer(entry, answer).ok) throw new Error(`${goldenFile}: entry ${entry.id}: cannot build a right answer from its expectation (got ${JSON.stringify(answer)})`);
    if (checkGoldenAnswer(entry, WRONG).ok) throw new Error(`${goldenFile}: entry ${entry.id} accepts the wrong answer ${JSON.stringify(WRONG)}`);
    return { prompt: entry.prompt, answer, wrongAnswer: WRONG };
  });
}
