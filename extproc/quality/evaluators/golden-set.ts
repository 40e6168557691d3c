import { z } from 'zod';
import { loadStructuredFile } from '../../../common/structured-file.js';
import { validateJson } from './json-schema.js';
import { normalizePrompt } from './golden-key.js';

export { normalizePrompt };

const entrySchema = z.strictObject({
  id: z.string().min(1),
  /** Only for this service; all services when absent. */
  service: z.string().optional(),
  /** The user prompt, compared after trimming, collapsing whitespace and lower-casing. */
  prompt: z.string().min(1),
  expect: z
    .strictObject({
      /** Each must appear in the answer (case-insensitive). */
      facts: z.array(z.string().min(1)).optional(),
      /** At least one must appear (case-insensitive): accepted spellings or synonyms. */
      anyOf: z.array(z.string().min(1)).min(1).optional(),
      /** A number in the answer within `tolerance` (absolute) of `value`; thousands separators are read. */
      number: z.strictObject({ value: z.number(), tolerance: z.number().min(0).default(0) }).optional(),
      /** The answer must match (JavaScript syntax, flag i). */
      regex: z
        .string()
        .refine((r) => isRegex(r), { message: 'not a valid regular expression' })
        .optional(),
      /** The answer must be JSON conforming to this JSON Schema (checked by Ajv). */
      jsonSchema: z.record(z.string(), z.unknown()).optional(),
    })
    .refine((e) => e.facts !== undefined || e.anyOf !== undefined || e.number !== undefined || e.regex !== undefined || e.jsonSchema !== undefined, {
      message: 'expect needs facts, anyOf, number, regex or jsonSchema',
    }),
});

export const goldenFileSchema = z.strictObject({ entries: z.array(entrySchema).default([]) });

export type GoldenEntry = z.output<typeof entrySchema>;

function isRegex(r: string): boolean {
  try {
    new RegExp(r, 'iu');
    return true;
  } catch {
    return false;
  }
}

/** Known-good queries, looked up by normalised prompt. */
export class GoldenSet {
  private readonly byPrompt = new Map<string, GoldenEntry[]>();
  private readonly services = new Set<string>();
  private anyService = false;

  constructor(readonly entries: readonly GoldenEntry[]) {
    for (const e of entries) {
      const key = normalizePrompt(e.prompt);
      this.byPrompt.set(key, [...(this.byPrompt.get(key) ?? []), e]);
      if (e.service === undefined) this.anyService = true;
      else this.services.add(e.service);
    }
  }

  static load(file: string): GoldenSet {
    return new GoldenSet(loadStructuredFile(file, goldenFileSchema).entries);
  }

  /** Whether requests to this service might be golden (their bodies are worth reading). */
  covers(service: string): boolean {
    return this.anyService || this.services.has(service);
  }

  match(service: string, prompt: string | undefined): GoldenEntry | undefined {
    if (prompt === undefined || this.byPrompt.size === 0) return undefined;
    return this.matchKey(service, normalizePrompt(prompt));
  }

  /** match() for a prompt already normalised (normalizePrompt), e.g. by the request-body worker. */
  matchKey(service: string, key: string): GoldenEntry | undefined {
    return this.byPrompt.get(key)?.find((e) => e.service === undefined || e.service === service);
  }

  /** The longest normalised golden prompt: a longer key matches nothing. */
  get longestKey(): number {
    let longest = 0;
    for (const key of this.byPrompt.keys()) longest = Math.max(longest, key.length);
    return longest;
  }
}

/** Whether the answer meets the entry's expectations; the failing check when it does not. */
export function checkGoldenAnswer(entry: GoldenEntry, answer: string): { ok: boolean; failed?: string } {
  const lower = answer.toLowerCase();
  for (const fact of entry.expect.facts ?? []) {
    if (!lower.includes(fact.toLowerCase())) return { ok: false, failed: `fact "${fact}" missing` };
  }
  const { anyOf, number } = entry.expect;
  if (anyOf !== undefined && !anyOf.some((a) => lower.includes(a.toLowerCase()))) return { ok: false, failed: `none of ${anyOf.map((a) => `"${a}"`).join(', ')} found` };
  if (number !== undefined && !numbersIn(answer).some((n) => Math.abs(n - number.value) <= number.tolerance)) {
    return { ok: false, failed: `no number within ${number.tolerance} of ${number.value}` };
  }
  if (entry.expect.regex !== undefined && !new RegExp(entry.expect.regex, 'iu').test(answer)) {
    return { ok: false, failed: `regex ${entry.expect.regex} does not match` };
  }
  if (entry.expect.jsonSchema !== undefined) {
    let value: unknown;
    try {
      value = JSON.parse(answer);
    } catch {
      return { ok: false, failed: 'answer is not JSON' };
    }
    const problem = validateJson(entry.expect.jsonSchema, value);
    if (problem) return { ok: false, failed: problem };
  }
  return { ok: true };
}

/** Every number written in a text: 1,234.5 and 1234.5 and -3 and 6e24 are read as such. */
export function numbersIn(text: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(/(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[+-]?\d+)?/giu)) {
    const n = Number(m[0].replaceAll(',', ''));
    if (Number.isFinite(n)) out.push(n);
  }
  return out;
}
