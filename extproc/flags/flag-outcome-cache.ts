import type { EvaluationContext } from '@openfeature/server-sdk';
import type { FlagOutcome } from './version-flags.js';

export type FlagEvaluator = (context: EvaluationContext, versions: readonly string[]) => Promise<FlagOutcome>;

/** What the cache needs to know about the flags in force. */
export interface FlagGeneration {
  /** Bumped (synchronously with the new flags taking force) on every good load of the flag file. */
  readonly generation: number;
  /** The flags in force read the clock (`$flagd.timestamp`): an outcome is then not a function of the context alone. */
  readsClock(): boolean;
}

/**
 * Remembers flag outcomes per (flag-file generation, whole evaluation context, versions), at
 * most `maxEntries` of them, least recently used out first. flagd's targeting is a pure
 * function of the flags and the context (fractional splits hash the targetingKey), so a hit
 * is exactly what OpenFeature would answer; the one exception, `$flagd.timestamp`, turns the
 * cache off while such flags are in force. A new generation empties the cache before the
 * next lookup, so a kill switch turned on applies to the very next request.
 */
export class FlagOutcomeCache {
  private readonly entries = new Map<string, FlagOutcome>();
  private generation = -1;

  constructor(
    private readonly maxEntries: number,
    private readonly flags: FlagGeneration,
    private readonly evaluate: FlagEvaluator,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  async outcome(context: EvaluationContext, versions: readonly string[]): Promise<FlagOutcome> {
    const generation = this.flags.generation;
    if (generation !== this.generation) {
      this.entries.clear();
      this.generation = generation;
    }
    if (this.maxEntries === 0 || this.flags.readsClock()) return this.evaluate(context, versions);
    const key = cacheKey(context, versions);
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      // Re-inserting moves it to the newest end of the Map's insertion order.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const outcome = await this.evaluate(context, versions);
    // The flags changed while evaluating: the outcome may mix two generations, so it is used once, not kept.
    if (this.flags.generation !== generation || this.generation !== generation) return outcome;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, outcome);
    return outcome;
  }
}

/** Every attribute, sorted by name, and the versions: two contexts share a key only when they are equal. */
export function cacheKey(context: EvaluationContext, versions: readonly string[]): string {
  const names = Object.keys(context).sort();
  return JSON.stringify([versions, names, names.map((name) => context[name] ?? null)]);
}
