/**
 * The last `size` outcomes (bad or not) with their times, in a ring: adding is O(1) and
 * counting walks at most `size` entries, only when a bad outcome arrives.
 */
export class OutcomeWindow {
  private readonly at: Float64Array;
  private readonly bad: Uint8Array;
  private next = 0;
  private filled = 0;

  constructor(readonly size: number) {
    this.at = new Float64Array(size);
    this.bad = new Uint8Array(size);
  }

  add(bad: boolean, now: number): void {
    this.at[this.next] = now;
    this.bad[this.next] = bad ? 1 : 0;
    this.next = (this.next + 1) % this.size;
    if (this.filled < this.size) this.filled += 1;
  }

  /** Outcomes no older than `maxAgeMs` at `now`, and how many of them were bad. */
  counts(now: number, maxAgeMs: number): { n: number; bad: number } {
    let n = 0;
    let bad = 0;
    const oldest = now - maxAgeMs;
    for (let i = 0; i < this.filled; i++) {
      if (this.at[i]! < oldest) continue;
      n += 1;
      bad += this.bad[i]!;
    }
    return { n, bad };
  }
}

/** Trips iff the window holds at least `minSamples` outcomes and the bad share is strictly above `limit`. */
export function breached(counts: { n: number; bad: number }, limit: number, minSamples: number): boolean {
  return counts.n >= minSamples && counts.bad / counts.n > limit;
}
