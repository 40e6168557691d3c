/**
 * Pairs the answers of one shadowed request, which arrive in any order (and, with Redis,
 * possibly at different extproc replicas). The stable's answer to the user meets the candidate's answer
 * to the copy (a candidate pair) and, for requests also sent to the stable a second time,
 * that second answer (a noise pair: what the stable itself varies by, Diffy's noise floor).
 * Each side is written to Redis under the request id with a TTL, in one MULTI with a GET of
 * its partner; whoever writes second gets the pair and deletes both. Memory is bounded by
 * the TTL times the shadow rate; a side whose partner never comes (the candidate hung, the
 * copy was dropped) expires.
 *
 * With the pairwise judge on, a side may also carry its answer's text (and the stable's side
 * the prompt), so the completed pair can be offered to the judge. The text lives exactly as
 * long as the side does: under the same key and TTL, deleted with it when the pair completes,
 * expired with it when the partner never comes. Without the judge no text is ever stored.
 */
import type { Redis } from 'ioredis';
import type { AnswerFeatures } from './answer-features.js';
import type { JudgeText } from './pair-judge-sample.js';

/** Which answer this is: the stable's to the user, the candidate's to the copy, or the stable's second answer. */
export type PairSide = 'stable' | 'candidate' | 'stable-again';
export type PairKind = 'candidate' | 'noise';

export interface ShadowPair {
  kind: PairKind;
  requestId: string;
  stable: AnswerFeatures;
  /** The candidate's answer (kind candidate) or the stable's second answer (kind noise). */
  other: AnswerFeatures;
  /** The sides' texts for the pairwise judge, when they carried any (the judge is on). */
  text?: { stable?: JudgeText; other?: JudgeText };
}

export const DEFAULT_PAIR_TTL_SECONDS = 120;

/** Where the answers of shadowed requests meet: Redis (shared, survives restarts) or this process's memory. */
export interface PairStore {
  record(requestId: string, side: PairSide, features: AnswerFeatures, withNoise?: boolean, text?: JudgeText): Promise<ShadowPair[]>;
}

/** A completed pair from the side just recorded and its waiting partner. */
function pairOf(kind: PairKind, requestId: string, side: PairSide, own: Waiting, theirs: Waiting): ShadowPair {
  const [stable, other] = side === 'stable' ? [own, theirs] : [theirs, own];
  const pair: ShadowPair = { kind, requestId, stable: stable.features, other: other.features };
  if (stable.text || other.text) pair.text = { ...(stable.text ? { stable: stable.text } : {}), ...(other.text ? { other: other.text } : {}) };
  return pair;
}

interface Waiting {
  features: AnswerFeatures;
  text?: JudgeText | undefined;
}

/** A side as stored in Redis: its features, plus its text under `judgeText` only when it carries any. */
function encodeSide(features: AnswerFeatures, text: JudgeText | undefined): string {
  return JSON.stringify(text ? { ...features, judgeText: text } : features);
}

function decodeSide(stored: string): Waiting {
  const { judgeText, ...features } = JSON.parse(stored) as AnswerFeatures & { judgeText?: JudgeText };
  return judgeText ? { features, text: judgeText } : { features };
}

/** The kinds of pair a side takes part in. */
function kindsFor(side: PairSide, withNoise: boolean): PairKind[] {
  return side === 'candidate' ? ['candidate'] : side === 'stable-again' ? ['noise'] : withNoise ? ['candidate', 'noise'] : ['candidate'];
}

/**
 * Pairs in this process's memory. Enough for extproc's own design: the replica that handles a
 * user request also sends its copies and reads their answers, so all sides of a pair arrive
 * here. Bounded: a side waits at most `ttlSeconds`, and at most `maxWaiting` sides wait at once
 * (the oldest are dropped first).
 */
export class MemoryPairStore implements PairStore {
  private readonly waiting = new Map<string, Waiting & { expires: number }>();

  constructor(
    private readonly options: { ttlSeconds?: number; maxWaiting?: number; now?: () => number } = {},
  ) {}

  async record(requestId: string, side: PairSide, features: AnswerFeatures, withNoise = false, text?: JudgeText): Promise<ShadowPair[]> {
    const now = (this.options.now ?? Date.now)();
    this.expire(now);
    const own = side === 'stable' ? 'stable' : 'other';
    const partner = side === 'stable' ? 'other' : 'stable';
    const pairs: ShadowPair[] = [];
    for (const kind of kindsFor(side, withNoise)) {
      const theirs = this.waiting.get(`${requestId}\u0000${kind}\u0000${partner}`);
      if (theirs) {
        this.waiting.delete(`${requestId}\u0000${kind}\u0000${partner}`);
        pairs.push(pairOf(kind, requestId, side, { features, text }, theirs));
        continue;
      }
      if (this.waiting.size >= (this.options.maxWaiting ?? 10_000)) this.waiting.delete(this.waiting.keys().next().value!);
      this.waiting.set(`${requestId}\u0000${kind}\u0000${own}`, { features, ...(text ? { text } : {}), expires: now + (this.options.ttlSeconds ?? DEFAULT_PAIR_TTL_SECONDS) * 1000 });
    }
    return pairs;
  }

  get size(): number {
    return this.waiting.size;
  }

  /** Sides waiting with text for the judge (what the privacy promise bounds). */
  get holdingText(): number {
    let n = 0;
    for (const side of this.waiting.values()) if (side.text) n++;
    return n;
  }

  /** Drops the sides whose TTL has passed (record does it too, on its way). */
  sweep(): void {
    this.expire((this.options.now ?? Date.now)());
  }

  private expire(now: number): void {
    // Insertion order is expiry order (one TTL): stop at the first side still waiting.
    for (const [key, side] of this.waiting) {
      if (side.expires > now) break;
      this.waiting.delete(key);
    }
  }
}

export class ShadowPairStore implements PairStore {
  constructor(
    private readonly redis: Redis,
    private readonly options: { service: string; ttlSeconds?: number; prefix?: string },
  ) {}

  /**
   * Records one side and returns the pairs it completed. The stable side is offered to the
   * candidate pair, and to the noise pair when `withNoise` (the request was also sent to the
   * stable again).
   */
  async record(requestId: string, side: PairSide, features: AnswerFeatures, withNoise = false, text?: JudgeText): Promise<ShadowPair[]> {
    const kinds = kindsFor(side, withNoise);
    const own = side === 'stable' ? 'stable' : 'other';
    const partner = side === 'stable' ? 'other' : 'stable';
    const ttl = this.options.ttlSeconds ?? DEFAULT_PAIR_TTL_SECONDS;
    const stored = encodeSide(features, text);
    const tx = this.redis.multi();
    for (const kind of kinds) tx.set(this.key(requestId, kind, own), stored, 'EX', ttl).get(this.key(requestId, kind, partner));
    const results = await tx.exec();
    if (!results) throw new Error(`shadow pair ${requestId}: Redis transaction aborted`);
    for (const [err] of results) if (err) throw new Error(`shadow pair ${requestId}: ${err.message}`);
    const pairs: ShadowPair[] = [];
    for (const [i, kind] of kinds.entries()) {
      const found = results[2 * i + 1]![1] as string | null;
      if (found === null) continue;
      await this.redis.del(this.key(requestId, kind, own), this.key(requestId, kind, partner));
      pairs.push(pairOf(kind, requestId, side, { features, text }, decodeSide(found)));
    }
    return pairs;
  }

  private key(requestId: string, kind: PairKind, side: 'stable' | 'other'): string {
    return `${this.options.prefix ?? 'fledge:shadow'}:${this.options.service}:${kind}:${requestId}:${side}`;
  }
}
