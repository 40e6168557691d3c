import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { judgePair, PairJudgeMetrics, type CallOutcome, type PairOrder } from '../../extproc/quality/judge/pair-judging.js';
import { combineOrders, preferenceOf } from '../../extproc/quality/judge/pairwise-preference.js';
import { pairwiseMessages, parsePairwiseVerdict, type PairwiseVerdict } from '../../extproc/quality/judge/pairwise-rubric.js';
import { REASON_MAX_CHARS } from '../../extproc/quality/judge/rubric.js';
import { emptyObservation, type Observation } from '../../extproc/quality/observation.js';
import { answerFeatures } from '../../extproc/shadow/answer-features.js';
import { judgeTextOf, pairJudgeSample, pairSampleFields, parsePairSampleFields, type PairJudgeSample } from '../../extproc/shadow/pair-judge-sample.js';
import { MemoryPairStore } from '../../extproc/shadow/pair-store.js';

const observation = (text: string, over: Partial<Observation> = {}): Observation => ({ ...emptyObservation(), kind: 'json', text, textLength: text.length, ...over });
const features = (text: string) => answerFeatures({ observation: observation(text), status: 200, latencyMs: 10 });
const labels = { service: 'chat', version: 'v2', rolloutHash: 'h2' };

describe('pairwise rubric parser', () => {
  const parsed = (reply: string) => {
    const p = parsePairwiseVerdict(reply);
    return p.ok ? p.verdict.better : p.problem;
  };

  it('reads "better" from JSON alone, fenced, or inside prose', () => {
    expect(parsePairwiseVerdict('{"better": "A", "reason": "correct capital"}')).toEqual({ ok: true, verdict: { better: 'A', reason: 'correct capital' } });
    expect(parsed('```json\n{"better": "B", "reason": "x"}\n```')).toBe('B');
    expect(parsed('My verdict: {"better": "tie", "reason": "both right"} thanks')).toBe('tie');
    expect(parsed('{"better": " b "}')).toBe('B');
    expect(parsed('{"better": "TIE"}')).toBe('tie');
    const long = parsePairwiseVerdict(JSON.stringify({ better: 'A', reason: 'x'.repeat(1000) }));
    expect(long.ok && long.verdict.reason.length).toBe(REASON_MAX_CHARS);
    expect(parsePairwiseVerdict('{"better": "A"}')).toEqual({ ok: true, verdict: { better: 'A', reason: '' } });
  });

  it('never guesses a preference: anything but A, B or tie is a judge error naming the problem', () => {
    expect(parsed('Answer A is better.')).toBe('unparseable');
    expect(parsed('')).toBe('unparseable');
    expect(parsed('["A"]')).toBe('unparseable');
    expect(parsed('{"better": "Answer A"}')).toBe('no-preference');
    expect(parsed('{"better": "both"}')).toBe('no-preference');
    expect(parsed('{"better": "C"}')).toBe('no-preference');
    expect(parsed('{"better": 1}')).toBe('no-preference');
    expect(parsed('{"better": null}')).toBe('no-preference');
    expect(parsed('{"winner": "A"}')).toBe('no-preference');
    const p = parsePairwiseVerdict('{"better": "both"}');
    expect(!p.ok && p.detail).toMatch(/"better" is not "A", "B" or "tie"/);
  });

  it('shows the question and both answers labelled A and B', () => {
    expect(pairwiseMessages('rubric', 'q', 'first', 'second')[1]?.content).toBe('Question:\nq\n\nAnswer A:\nfirst\n\nAnswer B:\nsecond');
  });
});

describe('combining the two orders', () => {
  it('maps a position to the answer shown there', () => {
    expect(preferenceOf('A', true)).toBe('stable');
    expect(preferenceOf('B', true)).toBe('candidate');
    expect(preferenceOf('A', false)).toBe('candidate');
    expect(preferenceOf('B', false)).toBe('stable');
    expect(preferenceOf('tie', false)).toBe('tie');
  });

  it('an answer preferred in both orders wins; both ties are a consistent tie', () => {
    // Stable first: A is the stable; candidate first: B is the stable.
    expect(combineOrders('A', 'B')).toEqual({ preferred: 'stable', inconsistent: false });
    expect(combineOrders('B', 'A')).toEqual({ preferred: 'candidate', inconsistent: false });
    expect(combineOrders('tie', 'tie')).toEqual({ preferred: 'tie', inconsistent: false });
  });

  it('orders that disagree are a tie, flagged position-inconsistent (a judge that always picks A or B)', () => {
    expect(combineOrders('A', 'A')).toEqual({ preferred: 'tie', inconsistent: true });
    expect(combineOrders('B', 'B')).toEqual({ preferred: 'tie', inconsistent: true });
    expect(combineOrders('A', 'tie')).toEqual({ preferred: 'tie', inconsistent: true });
    expect(combineOrders('tie', 'A')).toEqual({ preferred: 'tie', inconsistent: true });
  });
});

describe('judging one pair', () => {
  const sample: PairJudgeSample = { service: 'chat', version: 'v2', rollout_hash: 'h2', pair: 'candidate', request_id: 'r1', prompt: 'Capital of France?', stable: 'Paris.', other: 'Lyon.', enqueued_at: '1' };
  /** The verdict a rule gives, given the answers as shown: how the two calls are ordered and read. */
  const asking = (rule: (a: string, b: string) => PairwiseVerdict['better'] | 'no-verdict') => {
    const calls: [PairOrder, string, string][] = [];
    const call = async (order: PairOrder, a: string, b: string): Promise<CallOutcome<PairwiseVerdict>> => {
      calls.push([order, a, b]);
      const better = rule(a, b);
      return better === 'no-verdict' ? { kind: 'no-verdict', problem: 'unparseable', message: 'prose' } : { kind: 'ok', value: { better, reason: '' } };
    };
    return { calls, call };
  };

  it('asks the stable first, then the candidate first, and a preference that survives the swap wins', async () => {
    const { calls, call } = asking((a) => (a === 'Paris.' ? 'A' : 'B'));
    const outcome = await judgePair(sample, call);
    expect(calls).toEqual([['stable-first', 'Paris.', 'Lyon.'], ['candidate-first', 'Lyon.', 'Paris.']]);
    expect(outcome).toMatchObject({ kind: 'judged', combined: { preferred: 'stable', inconsistent: false } });
  });

  it('a judge that always picks A gives a tie and an inconsistent pair, never a winner', async () => {
    const { call } = asking(() => 'A');
    expect(await judgePair(sample, call)).toMatchObject({ kind: 'judged', combined: { preferred: 'tie', inconsistent: true } });
  });

  it('a reply that is no verdict ends the pair as one judge error, without asking the second order', async () => {
    const { calls, call } = asking(() => 'no-verdict');
    expect(await judgePair(sample, call)).toMatchObject({ kind: 'judge-error', order: 'stable-first', problem: 'unparseable' });
    expect(calls).toHaveLength(1);
  });

  it('counts each finished pair once: preference series at 0 for the other values, inconsistency, errors', async () => {
    const registry = new Registry();
    const metrics = new PairJudgeMetrics(registry);
    metrics.record(sample, { kind: 'judged', combined: { preferred: 'candidate', inconsistent: false }, reasons: ['', ''] });
    metrics.record({ ...sample, pair: 'noise' }, { kind: 'judged', combined: { preferred: 'tie', inconsistent: true }, reasons: ['', ''] });
    metrics.record(sample, { kind: 'judge-error', order: 'candidate-first', problem: 'no-preference', message: '' });
    metrics.record(sample, { kind: 'expired' });
    const value = async (name: string, match: Record<string, string>) =>
      (await registry.getSingleMetric(name)!.get()).values.filter((v) => Object.entries(match).every(([k, want]) => v.labels[k] === want)).reduce((s, v) => s + v.value, 0);
    expect(await value('inference_shadow_preference_total', { pair: 'candidate', preferred: 'candidate' })).toBe(1);
    expect(await value('inference_shadow_preference_total', { pair: 'candidate', preferred: 'stable' })).toBe(0);
    expect((await registry.getSingleMetric('inference_shadow_preference_total')!.get()).values.filter((v) => v.labels.pair === 'candidate')).toHaveLength(3);
    expect(await value('inference_shadow_preference_total', { pair: 'noise', preferred: 'tie' })).toBe(1);
    expect(await value('fledge_judge_pairwise_inconsistent_total', { pair: 'noise' })).toBe(1);
    expect(await value('fledge_judge_pairwise_inconsistent_total', { pair: 'candidate' })).toBe(0);
    expect(await value('fledge_judge_pairwise_errors_total', { pair: 'candidate', problem: 'no-preference' })).toBe(1);
    expect(await value('fledge_judge_pairs_total', { result: 'judged' })).toBe(2);
    expect(await value('fledge_judge_pairs_total', { result: 'judge-error' })).toBe(1);
    expect(await value('fledge_judge_pairs_total', { result: 'expired' })).toBe(1);
  });

  it('round-trips a pair through stream fields and rejects incomplete or unknown ones', () => {
    expect(parsePairSampleFields(pairSampleFields(sample))).toEqual(sample);
    expect(parsePairSampleFields(pairSampleFields({ ...sample, pair: 'other' as 'noise' }))).toBeUndefined();
    expect(parsePairSampleFields(pairSampleFields(sample).slice(0, -2))).toBeUndefined();
    expect(parsePairSampleFields(pairSampleFields({ ...sample, enqueued_at: 'soon' }))).toBeUndefined();
  });
});

describe('what extproc offers the pairwise judge', () => {
  it('keeps text only with the judge on and only of whole answers; the stable side carries the prompt, cut to the cap', () => {
    const ok = observation('Paris is the capital.');
    expect(judgeTextOf(false, ok, 200, 'Capital?', true, 8000)).toBeUndefined();
    expect(judgeTextOf(true, ok, 200, 'Capital?', true, 8000)).toEqual({ answer: 'Paris is the capital.', prompt: 'Capital?' });
    expect(judgeTextOf(true, ok, 200, undefined, false, 8000)).toEqual({ answer: 'Paris is the capital.' });
    expect(judgeTextOf(true, ok, 200, 'Capital?', true, 5)).toEqual({ answer: 'Paris', prompt: 'Capit' });
    expect(judgeTextOf(true, ok, 200, undefined, true, 8000)).toBeUndefined();
    expect(judgeTextOf(true, ok, 503, 'Capital?', true, 8000)).toBeUndefined();
    expect(judgeTextOf(true, ok, undefined, undefined, false, 8000)).toBeUndefined();
    expect(judgeTextOf(true, observation('Par', { truncated: true }), 200, undefined, false, 8000)).toBeUndefined();
    expect(judgeTextOf(true, observation('', {}), 200, undefined, false, 8000)).toBeUndefined();
    expect(judgeTextOf(true, observation('{', { malformed: true }), 200, undefined, false, 8000)).toBeUndefined();
  });

  it('offers a completed pair with both texts, and the store holds no text once the pair is made', async () => {
    const store = new MemoryPairStore();
    await store.record('r1', 'stable', features('Paris.'), true, { answer: 'Paris.', prompt: 'Capital?' });
    expect(store.holdingText).toBe(2); // waiting for the candidate and for the stable's second answer
    const [candidatePair] = await store.record('r1', 'candidate', features('Lyon.'), false, { answer: 'Lyon.' });
    const [noisePair] = await store.record('r1', 'stable-again', features('Paris!'), false, { answer: 'Paris!' });
    expect(store.size).toBe(0);
    expect(store.holdingText).toBe(0);
    expect(pairJudgeSample(candidatePair!, labels, 7)).toEqual({ service: 'chat', version: 'v2', rollout_hash: 'h2', pair: 'candidate', request_id: 'r1', prompt: 'Capital?', stable: 'Paris.', other: 'Lyon.', enqueued_at: '7' });
    expect(pairJudgeSample(noisePair!, labels, 7)).toMatchObject({ pair: 'noise', stable: 'Paris.', other: 'Paris!' });
  });

  it('offers nothing when a side brought no text (judge off, or an answer that was not whole)', async () => {
    const store = new MemoryPairStore();
    await store.record('r2', 'stable', features('Paris.'));
    const [off] = await store.record('r2', 'candidate', features('Lyon.'));
    expect(off!.text).toBeUndefined();
    expect(pairJudgeSample(off!, labels, 1)).toBeUndefined();
    await store.record('r3', 'stable', features('Paris.'), false, { answer: 'Paris.', prompt: 'Capital?' });
    const [half] = await store.record('r3', 'candidate', features(''));
    expect(pairJudgeSample(half!, labels, 1)).toBeUndefined();
    expect(store.holdingText).toBe(0);
  });

  it('drops the text of a side whose partner never comes once its TTL has passed', async () => {
    let now = 0;
    const store = new MemoryPairStore({ ttlSeconds: 120, now: () => now });
    await store.record('r4', 'stable', features('Paris.'), false, { answer: 'Paris.', prompt: 'Capital?' });
    now = 119_000;
    store.sweep();
    expect(store.holdingText).toBe(1);
    now = 120_000;
    store.sweep();
    expect(store.holdingText).toBe(0);
    expect(store.size).toBe(0);
  });
});
