type Purpose = 'probe' | 'shadow';

/** Nonces kept per purpose; past this the oldest go first (their tokens expire within 60 s anyway). */
const MAX_KEPT = 100_000;

/**
 * The accepted probe and shadow nonces the primary keeps for a worker that starts later:
 * a restarted worker must refuse a replay of a token its siblings accepted, as they do.
 */
export class KeptNonces {
  private readonly kept: Record<Purpose, Map<string, number>> = { probe: new Map(), shadow: new Map() };

  constructor(private readonly now: () => number = Date.now) {}

  /** A batch as workers send it: { probe?: [nonce, expiry][], shadow?: … }. Anything else is ignored. */
  add(batch: unknown): void {
    if (typeof batch !== 'object' || batch === null) return;
    for (const purpose of ['probe', 'shadow'] as const) {
      const entries = (batch as Record<string, unknown>)[purpose];
      if (!Array.isArray(entries)) continue;
      const kept = this.kept[purpose];
      for (const entry of entries) {
        if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'number') continue;
        kept.set(entry[0], entry[1]);
      }
      this.forget(kept);
    }
  }

  /** The unexpired nonces, as one batch. */
  batch(): Record<Purpose, [string, number][]> {
    const nowSeconds = this.now() / 1000;
    const live = (kept: Map<string, number>) => {
      this.forget(kept);
      return [...kept].filter(([, expiry]) => expiry >= nowSeconds);
    };
    return { probe: live(this.kept.probe), shadow: live(this.kept.shadow) };
  }

  /** Drops expired nonces from the oldest end (cheap; one that expires out of order goes later, or is filtered out). */
  private forget(kept: Map<string, number>): void {
    const nowSeconds = this.now() / 1000;
    for (const [nonce, expiry] of kept) {
      if (expiry >= nowSeconds && kept.size <= MAX_KEPT) break; // insertion order is close to expiry order
      kept.delete(nonce);
    }
  }
}
