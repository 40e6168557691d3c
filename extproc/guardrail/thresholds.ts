import { z } from 'zod';

/**
 * A service's hard limits, as the controller copies them from the rollout's policy into the
 * routing state (docs/extproc.md, "Guardrail"). A share of bad outcomes above a limit, over
 * at least `minSamples` of the last `window` outcomes no older than `maxAgeSeconds`, trips.
 */
export const guardrailThresholdsSchema = z
  .strictObject({
    /** Share of user requests answered 5xx (or not at all) above which the canary is taken off. */
    errorRate: z.number().gt(0).max(1).optional(),
    /** Share of evaluated answers judged hallucinated above which the canary is taken off. */
    hallucinationRate: z.number().gt(0).max(1).optional(),
    /** Fewer outcomes than this in the window never trip: a tiny n proves nothing. */
    minSamples: z.number().int().min(1),
    /** How many of the latest outcomes per signal the window holds. */
    window: z.number().int().min(1).max(100_000),
    /** Outcomes older than this leave the window, so an old burst cannot trip a recovered version. */
    maxAgeSeconds: z.number().positive(),
  })
  .refine((t) => t.errorRate !== undefined || t.hallucinationRate !== undefined, { message: 'a guardrail needs errorRate, hallucinationRate or both' })
  .refine((t) => t.minSamples <= t.window, { message: 'minSamples must not exceed window (it could never be reached)', path: ['minSamples'] });

export type GuardrailThresholds = z.output<typeof guardrailThresholdsSchema>;

/** What a window counts: user requests that failed, or evaluated answers that hallucinated. */
export type GuardrailSignal = 'errors' | 'hallucinations';

export function limitFor(t: GuardrailThresholds, signal: GuardrailSignal): number | undefined {
  return signal === 'errors' ? t.errorRate : t.hallucinationRate;
}
