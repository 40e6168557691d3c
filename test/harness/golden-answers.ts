/**
 * What a simulated model answers to a golden set's questions: for each entry a right
 * answer built from its expectation (a regex's first alternative), checked by the real
 * golden evaluator before use, and a wrong one it rejects. The sim answers with the wrong
 * one at its hallucination knob's rate; every quality figure then comes from extproc
 * evaluating the answer text, as with a real model.
 */
import { fileURLToPath } from 'node:url';
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

/** test/fixtures/golden/probe-test.yaml, the small golden set the local-stack tests give extproc and the prober. */
export const PROBE_TEST_GOLDEN_FILE = fileURLToPath(new URL('../fixtures/golden/probe-test.yaml', import.meta.url));
/** Its questions with the simulated models' right and wrong answers (wrong at their hallucination knob's rate). */
export const PROBE_TEST_QA: { prompt: string; answer: string; wrongAnswer: string }[] = [
  { prompt: 'What is the capital of France?', answer: 'The capital of France is Paris.', wrongAnswer: 'The capital of France is Lyon.' },
  { prompt: 'Which planet is the largest?', answer: 'Jupiter is the largest planet.', wrongAnswer: 'Neptune is the largest planet.' },
  { prompt: 'At what temperature in Celsius does water boil?', answer: 'Water boils at 100 °C at sea level.', wrongAnswer: 'Water boils at 80 °C.' },
  { prompt: 'In which year did the Second World War end?', answer: 'It ended in 1945.', wrongAnswer: 'It ended in 1939.' },
];
