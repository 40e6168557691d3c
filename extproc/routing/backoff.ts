/** Exponential backoff with full jitter: attempt n waits a random time in [0, min(max, base·2ⁿ)]. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs = 200,
    private readonly maxMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.max(this.baseMs / 2, Math.round(ceiling * this.random()));
  }

  reset(): void {
    this.attempt = 0;
  }
}
