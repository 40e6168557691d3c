/**
 * The judge worker's pairwise half: for each shadow pair on the pairs stream, ask the judge
 * twice (the stable's answer as A, then the candidate's as A), combine the two verdicts
 * (pairwise-preference.ts) and export the preference. A reply that is no verdict ends the
 * pair as one counted judge error (the second order is not asked: it could not make a
 * preference any more). Metrics are plain counts of pairs, like inference_shadow_*.
 */
import { Counter, type Registry } from 'prom-client';
import type { PairJudgeSample } from '../../shadow/pair-judge-sample.js';
import { combineOrders, type CombinedPreference } from './pairwise-preference.js';
import type { PairwiseVerdict } from './pairwise-rubric.js';

export const PAIR_ORDERS = ['stable-first', 'candidate-first'] as const;
export type PairOrder = (typeof PAIR_ORDERS)[number];

/** One judge call's outcome, as the worker's retry loop reports it. */
export type CallOutcome<T> = { kind: 'ok'; value: T } | { kind: 'no-verdict'; problem: string; message: string } | { kind: 'expired' } | { kind: 'stopped' };

export type PairOutcome = { kind: 'judged'; combined: CombinedPreference; reasons: [string, string] } | { kind: 'judge-error'; order: PairOrder; problem: string; message: string } | { kind: 'expired' } | { kind: 'stopped' };

/** The two answers in the order the judge is shown them. */
export function answersInOrder(sample: PairJudgeSample, order: PairOrder): [a: string, b: string] {
  return order === 'stable-first' ? [sample.stable, sample.other] : [sample.other, sample.stable];
}

/** Asks both orders through `call` (which waits for the limiter and retries a failing endpoint) and combines them. */
export async function judgePair(sample: PairJudgeSample, call: (order: PairOrder, a: string, b: string) => Promise<CallOutcome<PairwiseVerdict>>): Promise<PairOutcome> {
  const verdicts: PairwiseVerdict[] = [];
  for (const order of PAIR_ORDERS) {
    const outcome = await call(order, ...answersInOrder(sample, order));
    if (outcome.kind === 'no-verdict') return { kind: 'judge-error', order, problem: outcome.problem, message: outcome.message };
    if (outcome.kind !== 'ok') return outcome;
    verdicts.push(outcome.value);
  }
  const [stableFirst, candidateFirst] = verdicts as [PairwiseVerdict, PairwiseVerdict];
  return { kind: 'judged', combined: combineOrders(stableFirst.better, candidateFirst.better), reasons: [stableFirst.reason, candidateFirst.reason] };
}

const PAIR_LABELS = ['service', 'version', 'rollout_hash', 'pair'] as const;

export class PairJudgeMetrics {
  readonly pairs: Counter<'result'>;
  readonly calls: Counter<'order' | 'result'>;
  readonly preferences: Counter<(typeof PAIR_LABELS)[number] | 'preferred'>;
  readonly inconsistent: Counter<(typeof PAIR_LABELS)[number]>;
  readonly errors: Counter<(typeof PAIR_LABELS)[number] | 'order' | 'problem'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.pairs = new Counter({ name: 'fledge_judge_pairs_total', help: 'Shadow pairs the judge worker finished, by result (judged: one combined preference; judge-error: a reply was no verdict; expired; invalid).', labelNames: ['result'], registers });
    this.calls = new Counter({ name: 'fledge_judge_pairwise_calls_total', help: 'Pairwise judge calls, by order (stable-first, candidate-first) and result (ok, error: endpoint failed, no-verdict).', labelNames: ['order', 'result'], registers });
    this.preferences = new Counter({
      name: 'inference_shadow_preference_total',
      help: 'Shadow pairs by the pairwise LLM judge\'s combined preference over both orders (preferred: stable, candidate = the answer in the candidate\'s seat, the stable\'s second answer on noise pairs, or tie, also when the orders disagree). pair=candidate or noise.',
      labelNames: [...PAIR_LABELS, 'preferred'],
      registers,
    });
    this.inconsistent = new Counter({ name: 'fledge_judge_pairwise_inconsistent_total', help: 'Shadow pairs whose two orders got different verdicts from the judge (counted as a tie in inference_shadow_preference_total): the judge\'s position bias.', labelNames: PAIR_LABELS, registers });
    this.errors = new Counter({ name: 'fledge_judge_pairwise_errors_total', help: 'Shadow pairs left without a preference because a pairwise reply was no verdict (order: the call that failed, stable-first or candidate-first; problem: unparseable, no-preference).', labelNames: [...PAIR_LABELS, 'order', 'problem'], registers });
  }

  private readonly touched = new Set<string>();

  /**
   * Creates a rollout's preference series (both kinds, every value) at 0 when its first pair
   * arrives, before the judge answers: Prometheus sees no increase into a series' first
   * sample, so the first verdicts would otherwise be lost to rate() and increase().
   */
  touch(sample: PairJudgeSample): void {
    const key = `${sample.service}\u0000${sample.version}\u0000${sample.rollout_hash}`;
    if (this.touched.has(key)) return;
    this.touched.add(key);
    for (const pair of ['candidate', 'noise']) {
      const labels = { service: sample.service, version: sample.version, rollout_hash: sample.rollout_hash, pair };
      for (const preferred of ['stable', 'candidate', 'tie']) this.preferences.inc({ ...labels, preferred }, 0);
      this.inconsistent.inc(labels, 0);
    }
  }

  /** Counts a finished pair (its rollout's series created at 0 first, if touch() has not). */
  record(sample: PairJudgeSample, outcome: PairOutcome): void {
    const labels = { service: sample.service, version: sample.version, rollout_hash: sample.rollout_hash, pair: sample.pair };
    if (outcome.kind === 'stopped') return;
    this.pairs.inc({ result: outcome.kind });
    if (outcome.kind === 'judge-error') this.errors.inc({ ...labels, order: outcome.order, problem: outcome.problem });
    if (outcome.kind !== 'judged') return;
    this.touch(sample);
    this.preferences.inc({ ...labels, preferred: outcome.combined.preferred });
    if (outcome.combined.inconsistent) this.inconsistent.inc(labels);
  }
}
