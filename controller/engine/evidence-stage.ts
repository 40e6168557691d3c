/**
 * Evidence stages: a timed pause followed by an analysis step with `compare` metrics. The
 * engine looks at those metrics' evidence through the pause (every look interval, counts
 * since the stage began) and lets the data end the stage: early when every compared metric
 * is not worse than the stable, at once when one is worse, and past the planned pause (up
 * to a cap, then Paused "not enough evidence") while they are undecided. A pause followed by
 * threshold-only analyses (every Argo-shaped policy) keeps its fixed duration. Pure.
 */
import type { Policy, ResolvedAnalysis } from '../policy/policy.js';
import { durationMs, type Metric } from '../policy/schema.js';

/** A stage may run to this multiple of its planned pause before it pauses for lack of evidence (the evidence bench's rule). */
export const EVIDENCE_CAP_FACTOR = 3;
/** Between two looks, unless the compare metrics ask for a shorter interval. */
export const DEFAULT_LOOK_INTERVAL_MS = 30_000;

export interface EvidenceStage {
  /** The compare metrics of the analysis that follows the pause. */
  metrics: Metric[];
  /** That analysis (its args render the count queries). */
  analysis: ResolvedAnalysis;
  plannedMs: number;
  capMs: number;
  lookIntervalMs: number;
}

export function evidenceStageAt(policy: Policy, stepIndex: number): EvidenceStage | undefined {
  const pause = policy.steps[stepIndex];
  const next = policy.steps[stepIndex + 1];
  if (pause?.kind !== 'pause' || pause.durationMs === undefined || next?.kind !== 'analysis') return undefined;
  const metrics = next.analysis.metrics.filter((m) => m.compare !== undefined);
  if (metrics.length === 0) return undefined;
  const intervals = metrics.flatMap((m) => (m.interval === undefined ? [] : [durationMs(m.interval)]));
  return {
    metrics,
    analysis: next.analysis,
    plannedMs: pause.durationMs,
    capMs: EVIDENCE_CAP_FACTOR * pause.durationMs,
    lookIntervalMs: Math.min(DEFAULT_LOOK_INTERVAL_MS, ...intervals),
  };
}
