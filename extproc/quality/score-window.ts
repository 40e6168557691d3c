import { Gauge, type Registry } from 'prom-client';

/**
 * The mean of the scores seen in the last `windowSeconds`, per label set: a gauge whose
 * every series is itself an average, so `avg(...)` over series (evaluators, replicas) is
 * an average of averages. Memory is bounded per series (oldest scores dropped first).
 */
/** One label set's scores in a ring: the oldest at `head`, `count` of them; adding is O(1). */
interface Ring<L extends string> {
  labels: Record<L, string>;
  at: Float64Array;
  scores: Float64Array;
  head: number;
  count: number;
}

export class ScoreWindow<L extends string> {
  private readonly series = new Map<string, Ring<L>>();

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
      s = { labels, at: new Float64Array(this.maxPerSeries), scores: new Float64Array(this.maxPerSeries), head: 0, count: 0 };
      this.series.set(key, s);
    }
    const size = this.maxPerSeries;
    // Full: the newest overwrites the oldest (was Array.shift, O(n) on a 10k window).
    const slot = (s.head + s.count) % size;
    s.at[slot] = this.now();
    s.scores[slot] = score;
    if (s.count < size) s.count += 1;
    else s.head = (s.head + 1) % size;
  }

  /** Current means; series with no score in the window disappear. */
  means(): { labels: Record<L, string>; mean: number; count: number }[] {
    const cutoff = this.now() - this.windowSeconds * 1000;
    const size = this.maxPerSeries;
    const out: { labels: Record<L, string>; mean: number; count: number }[] = [];
    for (const [key, s] of this.series) {
      while (s.count > 0 && s.at[s.head]! < cutoff) {
        s.head = (s.head + 1) % size;
        s.count -= 1;
      }
      if (s.count === 0) {
        this.series.delete(key);
        continue;
      }
      let sum = 0;
      for (let i = 0; i < s.count; i++) sum += s.scores[(s.head + i) % size]!;
      out.push({ labels: s.labels, mean: sum / s.count, count: s.count });
    }
    return out;
  }
}
