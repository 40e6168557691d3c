import { z } from 'zod';
import { ConfigError } from '../common/config-error.js';

const ms = z.number().min(0).max(600_000);

export const latencySchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('fixed'), ms }).describe('every request takes exactly `ms`'),
    z
      .strictObject({ kind: z.literal('uniform'), minMs: ms, maxMs: ms })
      .refine((l) => l.maxMs >= l.minMs, { message: 'maxMs must be >= minMs', path: ['maxMs'] })
      .describe('uniform between minMs and maxMs'),
    z
      .strictObject({ kind: z.literal('lognormal'), medianMs: ms.positive(), p95Ms: ms.positive() })
      .refine((l) => l.p95Ms >= l.medianMs, { message: 'p95Ms must be >= medianMs', path: ['p95Ms'] })
      .describe('log-normal with the given median and 95th percentile (a long right tail)'),
  ])
  .describe('total response time; for streams, time to first token plus the spread of the remaining chunks');

const rate = z.number().min(0).max(1);
const tokenCount = z.number().int().min(0).max(1_000_000);

/**
 * Runtime knobs of a simulated model server. Every field has a default, so `{}` is a
 * valid knob set: a healthy, fast (20 ms) model that answers 32 tokens.
 */
export const knobsSchema = z
  .strictObject({
    latency: latencySchema.default({ kind: 'fixed', ms: 20 }),
    /** Streams only: time to the first token; default is a quarter of the sampled latency. */
    ttftMs: ms.optional(),
    /** Share of chat requests that fail with `errorStatus` (0..1). */
    errorRate: rate.default(0),
    errorStatus: z.number().int().min(400).max(599).default(500),
    tokens: z
      .strictObject({
        /** Reported prompt tokens; default: estimated from the messages' text (~4 characters a token). */
        prompt: tokenCount.optional(),
        /** Completion tokens to generate (capped by the request's max_tokens). */
        completion: tokenCount.default(32),
        /** Prompt tokens reported as served from the prompt cache (capped at the prompt tokens). */
        cachedPrompt: tokenCount.default(0),
        /** Share of responses that report the cached prompt tokens (a prompt-cache hit); the rest report 0. Default 1. */
        cacheHitRate: rate.optional(),
      })
      .prefault({}),
    /** Number of content chunks in a streamed answer (fewer when there are fewer tokens). */
    chunks: z.number().int().min(1).max(10_000).default(8),
    /** Share of answers flagged as hallucinated (reported via headers when qualityHeaders is on). */
    hallucinationRate: rate.default(0),
    /** Quality score the model reports for itself, or null for none. */
    qualityScore: rate.nullable().default(null),
    /** Put `x-quality-score` and `x-hallucination` on chat responses. */
    qualityHeaders: z.boolean().default(false),
    /**
     * Golden questions: a request whose last user message equals `prompt` (trimmed,
     * whitespace collapsed, case-insensitive) is answered with `answer`, or, for the
     * hallucinated share (hallucinationRate), with `wrongAnswer`.
     */
    golden: z
      .array(z.strictObject({ prompt: z.string().min(1), answer: z.string(), wrongAnswer: z.string().default('I am not sure; it may be 42.') }))
      .optional(),
    /**
     * Broken answers for robustness tests (200 status each): `non-json` (an HTML page
     * labelled JSON), `truncated-json` (half a completion), `oversized` (a completion with
     * `oversizedBytes` of text), `mislabelled` (an SSE stream labelled application/json).
     */
    bodyFault: z.enum(['non-json', 'truncated-json', 'oversized', 'mislabelled']).optional(),
    oversizedBytes: z.number().int().min(1).max(64 * 1024 * 1024).optional(),
    /** Answer requests that ask for logprobs with every token at this probability (so confidence = this). */
    confidence: z.number().gt(0).max(1).optional(),
    /** Act as an LLM judge: every answer is the verdict {"score": judgeScore, "hallucination": <drawn at hallucinationRate>, "reason": …}. */
    judgeScore: rate.optional(),
    /** Seed for the deterministic PRNG; without it draws come from Math.random. */
    seed: z.number().int().min(0).max(0xffffffff).optional(),
  })
  .describe('fledge sim runtime knobs');

export type Knobs = z.output<typeof knobsSchema>;
export type KnobsInput = z.input<typeof knobsSchema>;
export type Latency = z.output<typeof latencySchema>;

export const defaultKnobs: Knobs = knobsSchema.parse({});

/** Validates a complete knob set (missing fields take defaults); throws ConfigError. */
export function parseKnobs(input: unknown, source = 'knobs'): Knobs {
  const result = knobsSchema.safeParse(input ?? {});
  if (!result.success) throw ConfigError.fromZod(source, result.error);
  return result.data;
}

/** Applies a partial update (deep merge) to the current knobs and validates the result. */
export function mergeKnobs(current: Knobs, patch: unknown, source = 'knobs patch'): Knobs {
  if (!isPlainObject(patch)) {
    throw new ConfigError(source, [{ path: '', message: 'a knobs patch must be a JSON object' }]);
  }
  return parseKnobs(deepMerge(current, patch), source);
}

/**
 * Objects merge key by key; anything else (numbers, null, arrays) replaces. A variant
 * object whose `kind` changes is replaced whole, so switching latency from fixed to
 * uniform does not drag `ms` along.
 */
export function deepMerge(base: unknown, patch: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(patch)) return patch;
  if ('kind' in patch && patch.kind !== base.kind) return patch;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    out[key] = value === undefined ? out[key] : deepMerge(out[key], value);
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
