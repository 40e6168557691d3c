import type { InferenceLabels } from './metrics.js';

const key = (l: InferenceLabels) => `${l.service}\u0000${l.version}\u0000${l.rollout_hash}`;

/**
 * How many user requests each golden-probe verdict stands for, so that probe verdicts can
 * feed `inference_hallucination_total` and the seed's ratio
 * `rate(inference_hallucination_total) / rate(inference_requests_total)` estimates the
 * probes' hallucination rate (docs/quality.md): a verdict's weight is the number of user
 * requests this replica answered for that version since the previous verdict. Then
 * Σ weight·hallucinated / Σ weight is a request-weighted mean of the probe verdicts.
 *
 * A first verdict after a long gap would carry every request since then, a jump larger
 * than a query window holds; its weight is pro-rated to the last `horizonMs` (assuming a
 * steady request rate over the gap).
 */
export class ProbeWeights {
  private readonly series = new Map<string, { pending: number; since: number; lastProbeAt: number }>();

  constructor(
    private readonly horizonMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  countUserRequest(labels: InferenceLabels): void {
    const k = key(labels);
    const entry = this.series.get(k);
    if (entry) entry.pending++;
    else this.series.set(k, { pending: 1, since: this.now(), lastProbeAt: 0 });
  }

  /** The weight of a probe verdict for this version now; starts the next interval. */
  takeWeight(labels: InferenceLabels): number {
    const now = this.now();
    const entry = this.series.get(key(labels));
    if (!entry) {
      this.series.set(key(labels), { pending: 0, since: now, lastProbeAt: now });
      return 0;
    }
    const elapsed = now - entry.since;
    const weight = elapsed > this.horizonMs ? (entry.pending * this.horizonMs) / elapsed : entry.pending;
    entry.pending = 0;
    entry.since = now;
    entry.lastProbeAt = now;
    return weight;
  }

  /** Whether probe verdicts for this version arrived within the horizon (they then own the hallucination counter). */
  recentlyProbed(labels: InferenceLabels): boolean {
    const entry = this.series.get(key(labels));
    return entry !== undefined && entry.lastProbeAt > 0 && this.now() - entry.lastProbeAt <= this.horizonMs;
  }
}
