import { describe, expect, it } from 'vitest';
import { GoldenSet, checkGoldenAnswer, normalizePrompt } from '../../extproc/quality/evaluators/golden-set.js';

const FILE = 'extproc/quality/golden/general-knowledge.yaml';

describe('the default general-knowledge golden set', () => {
  const golden = GoldenSet.load(FILE);

  it('loads with at least 100 entries, unique ids and unique prompts, for every service', () => {
    expect(golden.entries.length).toBeGreaterThanOrEqual(100);
    expect(new Set(golden.entries.map((e) => e.id)).size).toBe(golden.entries.length);
    expect(new Set(golden.entries.map((e) => normalizePrompt(e.prompt))).size).toBe(golden.entries.length);
    expect(golden.entries.every((e) => e.service === undefined)).toBe(true);
    expect(golden.covers('any-service')).toBe(true);
  });

  it('recognises its prompts whatever the case and spacing', () => {
    const entry = golden.entries[0]!;
    expect(golden.match('chat', `  ${entry.prompt.toUpperCase()}  `)?.id).toBe(entry.id);
  });

  it('gives no credit to an evasive or empty answer', () => {
    for (const entry of golden.entries) {
      for (const evasive of ["I'm sorry, I don't know the answer to that question.", '']) {
        expect(checkGoldenAnswer(entry, evasive).ok, `${entry.id} accepts "${evasive}"`).toBe(false);
      }
    }
  });

  it('accepts right one-sentence answers and their variants, rejects wrong ones', () => {
    const cases: [id: string, answer: string, ok: boolean][] = [
      ['capital-france', 'The capital of France is Paris.', true],
      ['capital-france', 'The capital of France is Lyon.', false],
      ['planet-largest', 'The largest planet in our solar system is Jupiter.', true],
      ['planet-largest', 'The largest planet in our solar system is Neptune.', false],
      ['continent-count', 'There are seven continents.', true],
      ['continent-count', 'There are 7 continents on Earth.', true],
      ['continent-count', 'There are 17 continents.', false],
      ['capital-china', 'The capital of China is Beijing.', true],
      ['water-formula', 'The chemical formula of water is H2O.', true],
      ['history-ww2-end', 'World War II ended in 1945.', true],
      ['history-ww2-end', 'World War II ended in 1944.', false],
    ];
    for (const [id, answer, ok] of cases) {
      const entry = golden.entries.find((e) => e.id === id);
      expect(entry, id).toBeDefined();
      expect(checkGoldenAnswer(entry!, answer).ok, `${id}: ${answer}`).toBe(ok);
    }
  });
});
