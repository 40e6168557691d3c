/**
 * inference_shadow_*: every completed pair, by kind (candidate: the stable's answer against
 * the candidate's; noise: against the stable's own second answer). A shadow analysis compares
 * the two kinds: a difference the candidate pairs show and the noise pairs do not is the
 * candidate's. Counters are plain counts of pairs (no 1/p weighting), so rates of them are
 * counts an evidence comparison can use.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { PairSide, ShadowPair } from './pair-store.js';
import type { ShadowTicket } from './shadow-decision.js';

export type CaptureOutcome = 'recorded' | 'dropped' | 'unpinned' | 'store-error' | 'unavailable';

/** Pair and capture series carry the candidate's labels (noise pairs too: the rollout they belong to). */
export function shadowLabels(t: ShadowTicket): Omit<Labels, 'pair'> {
  return { service: t.service, version: t.candidate, rollout_hash: t.candidateHash };
}
import { comparePair, type Flip, type PairComparison } from './pair-comparison.js';

const LABELS = ['service', 'version', 'rollout_hash', 'pair'] as const;
type Labels = Record<(typeof LABELS)[number], string>;

/** Boolean features whose change between the two answers is counted. */
export const FLIP_FEATURES = ['golden-correct', 'refusal', 'json-valid', 'failed'] as const;

export class ShadowMetrics {
  readonly pairs: Counter<(typeof LABELS)[number]>;
  readonly flips: Counter<(typeof LABELS)[number] | 'feature' | 'direction'>;
  readonly finishReasonChanged: Counter<(typeof LABELS)[number]>;
  readonly lengthRatio: Histogram<(typeof LABELS)[number]>;
  readonly similarity: Histogram<(typeof LABELS)[number]>;
  readonly latencyDelta: Histogram<(typeof LABELS)[number]>;
  readonly compared: Counter<(typeof LABELS)[number] | 'feature'>;
  readonly captures: Counter<'service' | 'version' | 'rollout_hash' | 'side' | 'outcome'>;
  readonly judgeOffers: Counter<'result'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.pairs = new Counter({ name: 'inference_shadow_pairs_total', help: 'Shadow pairs compared: pair=candidate (stable vs candidate answer) or noise (stable vs its own second answer).', labelNames: LABELS, registers });
    this.flips = new Counter({ name: 'inference_shadow_flips_total', help: 'Pairs whose second answer gained or lost a property the stable answer had or lacked (feature: golden-correct, refusal, json-valid, failed).', labelNames: [...LABELS, 'feature', 'direction'], registers });
    this.finishReasonChanged = new Counter({ name: 'inference_shadow_finish_reason_changed_total', help: 'Pairs whose two answers stopped for different reasons.', labelNames: LABELS, registers });
    this.lengthRatio = new Histogram({ name: 'inference_shadow_length_ratio', help: 'Second answer length / stable answer length (characters + 1).', labelNames: LABELS, buckets: [0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4], registers });
    this.similarity = new Histogram({ name: 'inference_shadow_similarity', help: 'Estimated Jaccard similarity of the two answers\' word pairs (MinHash).', labelNames: LABELS, buckets: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1], registers });
    this.latencyDelta = new Histogram({ name: 'inference_shadow_latency_delta_seconds', help: 'Second answer latency minus stable answer latency.', labelNames: LABELS, buckets: [-2, -1, -0.5, -0.25, -0.1, -0.05, 0, 0.05, 0.1, 0.25, 0.5, 1, 2], registers });
    this.compared = new Counter({ name: 'inference_shadow_compared_total', help: 'Pairs in which a boolean feature was defined on both answers (the denominator of its flips; golden-correct only for golden questions).', labelNames: [...LABELS, 'feature'], registers });
    this.captures = new Counter({
      name: 'inference_shadow_captures_total',
      help: 'Answers shadow mode tried to capture, by side (stable, candidate, stable-again) and outcome: recorded; dropped (too many copies in flight, a body over the cap, a long answer the quality worker could not describe); unpinned (the proxy failed open past extproc, so another version answered the copy: ext_proc is failing on the proxy); store-error (Redis); unavailable (a shadow step with shadow capture not configured). version and rollout_hash are the candidate\'s.',
      labelNames: ['service', 'version', 'rollout_hash', 'side', 'outcome'],
      registers,
    });
    this.judgeOffers = new Counter({
      name: 'fledge_shadow_judge_pairs_total',
      help: 'Completed shadow pairs offered to the pairwise LLM judge (LLM judge configured), by result: queued; failed (Redis away, dropped); skipped (an answer was not whole: an error, a cut or oversized body, no prompt).',
      labelNames: ['result'],
      registers,
    });
  }

  private readonly touched = new Set<string>();

  /**
   * Creates a rollout's pair, flip and capture series and its histograms at 0 on its first
   * shadowed request, so a rate or increase over them counts the first pairs too (Prometheus
   * cannot see an increase into a series' first sample).
   */
  touch(ticket: ShadowTicket): void {
    const key = `${ticket.service}\u0000${ticket.candidateHash}`;
    if (this.touched.has(key)) return;
    this.touched.add(key);
    const labels = shadowLabels(ticket);
    for (const pair of ['candidate', 'noise']) {
      const l = { ...labels, pair };
      this.pairs.inc(l, 0);
      this.finishReasonChanged.inc(l, 0);
      for (const feature of FLIP_FEATURES) {
        this.compared.inc({ ...l, feature }, 0);
        for (const direction of ['gained', 'lost']) this.flips.inc({ ...l, feature, direction }, 0);
      }
      for (const histogram of [this.lengthRatio, this.similarity, this.latencyDelta]) histogram.zero(l);
    }
    for (const side of ['stable', 'candidate', 'stable-again']) this.captures.inc({ ...labels, side, outcome: 'recorded' }, 0);
  }

  countCapture(ticket: ShadowTicket, side: PairSide, outcome: CaptureOutcome): void {
    this.touch(ticket);
    this.captures.inc({ ...shadowLabels(ticket), side, outcome });
  }

  /** Counts one completed pair; returns its comparison, for whoever keeps the pair too. */
  record(pair: ShadowPair, labels: Omit<Labels, 'pair'>): PairComparison {
    const l: Labels = { ...labels, pair: pair.kind };
    const c = comparePair(pair.stable, pair.other);
    this.pairs.inc(l);
    const flips: [(typeof FLIP_FEATURES)[number], Flip][] = [['golden-correct', c.goldenCorrect], ['refusal', c.refusal], ['json-valid', c.jsonValid], ['failed', c.failed]];
    const defined: Record<(typeof FLIP_FEATURES)[number], boolean> = {
      'golden-correct': pair.stable.goldenCorrect !== undefined && pair.other.goldenCorrect !== undefined,
      refusal: true,
      'json-valid': pair.stable.jsonValid !== undefined && pair.other.jsonValid !== undefined,
      failed: true,
    };
    for (const [feature, direction] of flips) {
      if (!defined[feature]) continue;
      this.compared.inc({ ...l, feature });
      if (direction) this.flips.inc({ ...l, feature, direction });
    }
    if (c.finishReasonChanged) this.finishReasonChanged.inc(l);
    this.lengthRatio.observe(l, c.lengthRatio);
    this.similarity.observe(l, c.similarity);
    this.latencyDelta.observe(l, c.latencyDeltaMs / 1000);
    return c;
  }
}
