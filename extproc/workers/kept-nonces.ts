import { nonceEntries, type Purpose } from './nonce-sharing.js';

/** Nonces kept per purpose; past this the oldest go first (their tokens expire within 60 s anyway). */
const MAX_KEPT = 100_000;

/**
 * The accepted probe and shadow nonces the primary keeps for a worker that starts later:
 * a restarted worker must refuse a replay of a token its siblings accepted, as they do.
 */
export class KeptNonces {
  private readonly kept: Record<Purpose, Map<string, number>> = { probe: new Map(), shadow: new Map() };

  constructor(private readonly now: () => number = Date.now) {}

  /** A batch as workers send it (nonce-sharing.ts); malformed entries are ignored. */
  add(batch: unknown): void {
    for (const [purpose, nonce, expiry] of nonceEntries(batch)) this.kept[purpose].set(nonce, expiry);
    this.forget(this.kept.probe);
    this.forget(this.kept.shadow);
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
