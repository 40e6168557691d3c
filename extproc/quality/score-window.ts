import { Gauge, type Registry } from 'prom-client';

/**
 * The mean of the scores seen in the last `windowSeconds`, per label set: a gauge whose
 * every series is itself an average, so `avg(...)` over series (evaluators, replicas) is
 * an average of averages. Memory is bounded per series (oldest scores dropped first).
 */
export class ScoreWindow<L extends string> {
  private readonly series = new Map<string, { labels: Record<L, string>; at: number[]; scores: number[] }>();

  constructor(
    registry: Registry,
    name: string,
    help: string,
    labelNames: readonly L[],
    private readonly windowSeconds: number,
    private readonly maxPerSeries = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    const self = this;
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, mean } of self.means()) this.set(labels as never, mean);
      },
    });
  }

  add(labels: Record<L, string>, score: number): void {
    const key = JSON.stringify(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels, at: [], scores: [] };
      this.series.set(key, s);
    }
    s.at.push(this.now());
    s.scores.push(score);
    if (s.scores.length > this.maxPerSeries) {
      s.at.shift();
      s.scores.shift();
    }
  }

  /** Current means; series with no score in the window disappear. */
  means(): { labels: Record<L, string>; mean: number; count: number }[] {
    const cutoff = this.now() - this.windowSeconds * 1000;
    const out: { labels: Record<L, string>; mean: number; count: number }[] = [];
    for (const [key, s] of this.series) {
      let drop = 0;
      while (drop < s.at.length && (s.at[drop] ?? 0) < cutoff) drop++;
      if (drop > 0) {
        s.at.splice(0, drop);
        s.scores.splice(0, drop);
      }
      if (s.scores.length === 0) {
        this.series.delete(key);
        continue;
      }
      out.push({ labels: s.labels, mean: s.scores.reduce((a, b) => a + b, 0) / s.scores.length, count: s.scores.length });
    }
    return out;
  }
}
