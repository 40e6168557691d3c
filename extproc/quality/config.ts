import { z } from 'zod';

const rate = z.number().min(0).max(1);
const perMillion = z.number().min(0);

/** One always-sample rule: every request that matches is sampled, whatever the rate. */
const alwaysSampleRule = z
  .strictObject({
    /** A request header (lower-case); matches when present, or when its value equals `equals`. */
    header: z.string().regex(/^[a-z0-9:-]+$/, 'header names are lower-case').optional(),
    equals: z.string().optional(),
    /** A path prefix, e.g. /v1/embeddings. */
    pathPrefix: z.string().startsWith('/').optional(),
    /** Restrict the rule to one service; all services when absent. */
    service: z.string().optional(),
  })
  .refine((r) => r.header !== undefined || r.pathPrefix !== undefined, { message: 'a rule needs a header or a pathPrefix' });

export type AlwaysSampleRule = z.output<typeof alwaysSampleRule>;

const price = z.strictObject({
  /** Price per million uncached input (prompt) tokens. */
  inputPerMillion: perMillion,
  /** Price per million output (completion) tokens. */
  outputPerMillion: perMillion,
  /** Price per million cached input tokens; defaults to the input price. */
  cachedInputPerMillion: perMillion.optional(),
});

export type Price = z.output<typeof price>;

/**
 * The `quality` section of extproc's config: which responses are sampled and what is
 * done with them. Every field has a default; `quality: {}` samples 10% of every service.
 */
export const qualityConfigSchema = z
  .strictObject({
    /** false: no sampling, no body ever reaches extproc (the header-only path). */
    enabled: z.boolean().default(true),
    sampling: z
      .strictObject({
        /** Share of requests sampled per service (by x-request-id hash). */
        defaultRate: rate.default(0.1),
        /** service → rate, overriding defaultRate. */
        services: z.record(z.string(), rate).default({}),
        always: z.array(alwaysSampleRule).default([]),
      })
      .prefault({}),
    /** Largest response (or request) body parsed; bigger ones are counted as oversized and skipped. */
    maxBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    /**
     * For sampled streaming requests that did not ask for usage, add
     * stream_options.include_usage so token counts can be read. Changes what the client
     * receives (a final chunk with empty choices); off by default.
     */
    injectStreamUsage: z.boolean().default(false),
    golden: z
      .strictObject({
        /** Golden set file (YAML/JSON); see docs/quality.md. */
        file: z.string().min(1).optional(),
        /**
         * `sampled`: golden prompts are recognised among sampled requests only.
         * `all`: every request body of a service with golden entries is inspected
         * (one extra round trip per request), and a golden match is always sampled.
         */
        inspect: z.enum(['sampled', 'all']).default('all'),
      })
      .prefault({}),
    /**
     * Self-reported quality (x-quality-score / x-hallucination response headers): trusted
     * only for the services listed here ("*": all). Off by default: a model's claim about
     * itself is not a measurement.
     */
    modelReported: z.strictObject({ services: z.array(z.string().min(1)).default([]) }).prefault({}),
    /** version (or "service/version") → price; unknown versions cost nothing (and are counted). */
    prices: z.record(z.string(), price).default({}),
    /** Window of each version's golden-probe hallucination rate, which its user requests carry into inference_hallucination_total. */
    probeRateWindowSeconds: z.number().int().min(5).max(3600).default(60),
    /** Window of the inference_quality_score gauge (mean of the scores seen in it). */
    scoreWindowSeconds: z.number().int().min(10).max(3600).default(300),
    judge: z
      .strictObject({
        /** Redis URL; absent: no LLM judge. */
        redisUrl: z.string().min(1).optional(),
        stream: z.string().min(1).default('fledge:judge:samples'),
        /**
         * Where shadow pairs go for the pairwise judge (prompt and both answers): every
         * completed shadow pair whose answers are whole, while a shadow step runs. Same Redis,
         * MAXLEN and text cap as the samples.
         */
        pairStream: z.string().min(1).default('fledge:judge:pairs'),
        /**
         * How long a pair's texts may wait on the pairs stream: older entries are trimmed and the
         * stream expires after it. Keep it equal to \`fledge judge --ttl\` (600), which drops older
         * pairs unjudged anyway.
         */
        pairTtlSeconds: z.number().int().min(10).max(86_400).default(600),
        /** Share of sampled responses sent to the judge. */
        rate: rate.default(1),
        /** Approximate cap on the stream's length (XADD MAXLEN ~). */
        maxLength: z.number().int().min(1).default(10_000),
        /** Largest prompt / answer text sent (characters). */
        maxTextChars: z.number().int().min(100).default(8000),
      })
      .prefault({}),
  })
  .prefault({});

export type QualityConfig = z.output<typeof qualityConfigSchema>;

