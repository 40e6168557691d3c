/**
 * What shadow mode keeps of one answer: features and a similarity signature, not the text
 * (prompts and answers are kept only when a user configures it). Built from the same
 * Observation extproc makes of every sampled response, so a stable answer and a candidate's
 * shadow answer are described the same way.
 */
import MurmurHash3 from 'imurmurhash';
import { looksLikeRefusal } from '../quality/evaluators/format.js';
import type { Observation } from '../quality/observation.js';

export interface AnswerFeatures {
  /** Characters of the answer (all of them, also past the size cap). */
  chars: number;
  words: number;
  outputTokens: number | undefined;
  latencyMs: number;
  ttftMs: number | undefined;
  finishReason: string | undefined;
  refusal: boolean;
  /** undefined when JSON was not asked for. */
  jsonValid: boolean | undefined;
  /** undefined when the prompt is not a golden question. */
  goldenCorrect: boolean | undefined;
  confidence: number | undefined;
  /** The answer failed (status ≥ 500, malformed or truncated body): the other features mean little. */
  failed: boolean;
  /** MinHash of word shingles: estimates the Jaccard similarity of two answers without their text. */
  signature: number[];
}

/** Hash functions in a signature: the similarity estimate's standard error is ≤ 1/(2√k) ≈ 0.06. */
export const SIGNATURE_SIZE = 64;
/** Words per shingle: pairs of words keep some order without making paraphrases look unrelated. */
const SHINGLE = 2;

export interface FeatureInput {
  observation: Observation;
  status: number | undefined;
  latencyMs: number;
  jsonValid?: boolean;
  goldenCorrect?: boolean;
}

export function answerFeatures(input: FeatureInput): AnswerFeatures {
  const o = input.observation;
  const words = wordsOf(o.text);
  return {
    chars: o.textLength,
    words: words.length,
    outputTokens: o.usage?.output,
    latencyMs: input.latencyMs,
    ttftMs: o.ttftSeconds === undefined ? undefined : o.ttftSeconds * 1000,
    finishReason: o.finishReason,
    refusal: o.refusal !== undefined || looksLikeRefusal(o.text),
    jsonValid: input.jsonValid,
    goldenCorrect: input.goldenCorrect,
    confidence: o.confidence,
    failed: (input.status ?? 0) >= 500 || o.malformed || o.truncated,
    signature: minHash(words),
  };
}

/** Lower-cased words, punctuation dropped: "Paris." and "paris" are the same word. */
export function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/**
 * Per-position seeds of the signature: each position k permutes the shingles' hashes by its
 * own seed through a 32-bit finaliser (murmur3's fmix32), so a shingle is hashed once and
 * not once per position (64× fewer string hashes: ~8× faster on a 40-word answer).
 */
const POSITION_SEEDS = Array.from({ length: SIGNATURE_SIZE }, (_, k) => fmix32(Math.imul(k + 1, 0x9e3779b9)));

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function minHash(words: readonly string[], size = SIGNATURE_SIZE): number[] {
  const shingles = new Set<string>();
  if (words.length < SHINGLE) shingles.add(words.join(' '));
  for (let i = 0; i + SHINGLE <= words.length; i++) shingles.add(words.slice(i, i + SHINGLE).join(' '));
  const seeds = size === SIGNATURE_SIZE ? POSITION_SEEDS : Array.from({ length: size }, (_, k) => fmix32(Math.imul(k + 1, 0x9e3779b9)));
  const signature = new Array<number>(size).fill(0xffffffff);
  for (const shingle of shingles) {
    const base = MurmurHash3(shingle).result();
    for (let k = 0; k < size; k++) {
      const h = fmix32(base ^ seeds[k]!);
      if (h < signature[k]!) signature[k] = h;
    }
  }
  return signature;
}

/** The share of equal positions: an unbiased estimate of the two word-shingle sets' Jaccard similarity. */
export function similarity(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length || a.length === 0) throw new RangeError(`signatures differ in size (${a.length} vs ${b.length})`);
  let equal = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) equal++;
  return equal / a.length;
}
