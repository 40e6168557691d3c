import { z } from 'zod';

/**
 * The `shadow` section of extproc's config (docs/shadow.md). Shadow capture runs when a
 * routing state asks for it (a shadow step) and this section names where copies go and
 * where pairs meet; it also needs the probe secret (copies are pinned with it) and quality
 * sampling on (answers are read by the same observer).
 */
export const shadowConfigSchema = z
  .strictObject({
    /** The proxy that serves the service (local Envoy's listener, the mesh gateway): copies go through it, pinned. */
    via: z.url({ error: 'shadow.via must be a URL, e.g. http://127.0.0.1:10000' }).optional(),
    /**
     * Where the two answers of a request meet and where compared pairs are kept for
     * `fledge shadow-report`. Without it pairs meet in extproc's memory (the replica that
     * sends a copy reads its answer, so that is enough) and no report is kept.
     */
    redisUrl: z.string().min(1).optional(),
    /** Share of shadowed requests also sent to the stable a second time: the noise floor. */
    noiseShare: z.number().min(0).max(1).default(0.25),
    /** Copies in flight at once; more are dropped and counted, never queued behind users. */
    maxInFlight: z.number().int().min(1).max(10_000).default(32),
    /** A copy that takes longer is abandoned and recorded as a failed answer. */
    timeoutSeconds: z.number().positive().max(600).default(60),
    /** How long one answer waits in Redis for its partner. */
    pairTtlSeconds: z.number().int().min(1).max(3600).default(120),
    /** Completed pairs kept per rollout for `fledge shadow-report` (features only, no text). */
    logCap: z.number().int().min(0).max(1_000_000).default(5000),
  })
  .prefault({});

export type ShadowConfig = z.output<typeof shadowConfigSchema>;

/** Why shadow capture cannot run with this config, or undefined when it can. */
export function shadowUnavailable(config: ShadowConfig, probeSecret: boolean, qualityEnabled: boolean): string | undefined {
  if (!config.via) return 'shadow.via is not set';
  if (!probeSecret) return 'no probe secret (copies are pinned to a version with it)';
  if (!qualityEnabled) return 'quality.enabled is false (answers are read by the quality observer)';
  return undefined;
}
