import type { InferenceLabels } from './metrics.js';

const key = (l: InferenceLabels) => `${l.service}\u0000${l.version}\u0000${l.rollout_hash}`;

interface Series {
  at: number[];
  hallucinated: number[];
  sum: number;
  lastVerdictAt: number;
}

/**
 * Each version's golden-probe hallucination rate over the last `windowMs`: the mean of
 * its probe verdicts (1 hallucinated, 0 right). extproc credits every user request of the
 * version with this rate in `inference_hallucination_total` (docs/quality.md), so the
 * seed's ratio `rate(inference_hallucination_total) / rate(inference_requests_total)` is
 * the probes' rate averaged over the requests in the query window, and it moves only
 * with user traffic, never with probe traffic. O(1) amortised per call; memory bounded
 * per version.
 */
export class ProbeRates {
  private readonly series = new Map<string, Series>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxPerSeries = 10_000,
  ) {}

  recordVerdict(labels: InferenceLabels, hallucinated: boolean): void {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { at: [], hallucinated: [], sum: 0, lastVerdictAt: 0 };
      this.series.set(k, s);
    }
    const now = this.now();
    s.at.push(now);
    s.hallucinated.push(hallucinated ? 1 : 0);
    s.sum += hallucinated ? 1 : 0;
    s.lastVerdictAt = now;
    if (s.at.length > this.maxPerSeries) this.dropOldest(s);
  }

  /** The version's probe hallucination rate now; undefined when it had no probe verdict in the window. */
  rate(labels: InferenceLabels): number | undefined {
    const s = this.series.get(key(labels));
    if (!s) return undefined;
    const cutoff = this.now() - this.windowMs;
    while (s.at.length > 0 && s.at[0]! < cutoff) this.dropOldest(s);
    return s.at.length === 0 ? undefined : s.sum / s.at.length;
  }

  /** Whether the version has probe verdicts in the window (they then own its hallucination counter). */
  probed(labels: InferenceLabels): boolean {
    return this.rate(labels) !== undefined;
  }

  private dropOldest(s: Series): void {
    s.at.shift();
    s.sum -= s.hallucinated.shift() ?? 0;
  }
}
