import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../sim/random.js';
import { answerFeatures, minHash, similarity, wordsOf, SIGNATURE_SIZE } from '../../extproc/shadow/answer-features.js';
import { comparePair } from '../../extproc/shadow/pair-comparison.js';
import { MemoryPairStore } from '../../extproc/shadow/pair-store.js';
import { emptyObservation } from '../../extproc/quality/observation.js';

const answer = (text: string, extra: Partial<ReturnType<typeof emptyObservation>> = {}) => ({ ...emptyObservation(), kind: 'json' as const, text, textLength: text.length, finishReason: 'stop', ...extra });

/** The exact Jaccard similarity of two texts' word pairs, computed independently of MinHash. */
function jaccard(a: string, b: string): number {
  const pairs = (t: string) => {
    const w = wordsOf(t);
    return new Set(w.length < 2 ? [w.join(' ')] : w.slice(1).map((x, i) => `${w[i]} ${x}`));
  };
  const A = pairs(a);
  const B = pairs(b);
  const inter = [...A].filter((x) => B.has(x)).length;
  return inter / (A.size + B.size - inter);
}

describe('answer features', () => {
  it('describe an answer without keeping its text: length, refusal, failure, a signature', () => {
    const f = answerFeatures({ observation: answer('I cannot help with that request.'), status: 200, latencyMs: 120, goldenCorrect: false });
    expect(f).toMatchObject({ chars: 32, words: 6, refusal: true, failed: false, goldenCorrect: false, latencyMs: 120, finishReason: 'stop' });
    expect(f.signature).toHaveLength(SIGNATURE_SIZE);
    expect(JSON.stringify(f)).not.toContain('help');
    expect(answerFeatures({ observation: answer('half', { truncated: true }), status: 200, latencyMs: 1 }).failed).toBe(true);
    expect(answerFeatures({ observation: answer(''), status: 503, latencyMs: 1 }).failed).toBe(true);
  });

  it('MinHash similarity: 1 for the same words (case and punctuation aside), near the exact Jaccard otherwise', () => {
    expect(similarity(minHash(wordsOf('The capital of France is Paris.')), minHash(wordsOf('the capital of france is paris')))).toBe(1);
    const a = 'The capital of France is Paris, a city on the Seine known for its museums and cafes.';
    const b = 'The capital of France is Paris, which lies on the river Seine and is famous for art.';
    const c = 'Neptune is the eighth planet from the Sun and the farthest known planet.';
    const ab = similarity(minHash(wordsOf(a)), minHash(wordsOf(b)));
    // 64 hashes: standard error ≤ 1/(2·8) = 0.0625; three of them is a generous bound.
    expect(Math.abs(ab - jaccard(a, b))).toBeLessThan(0.19);
    expect(similarity(minHash(wordsOf(a)), minHash(wordsOf(c)))).toBeLessThan(0.1);
    expect(() => similarity([1, 2], [1])).toThrow(RangeError);
  });

  it('MinHash over 400 answer pairs of every overlap: unbiased against the exact Jaccard, error within its standard error', () => {
    // Seeded: pairs of 20–80-word answers sharing a random share of their words.
    const random = seededRandom(7);
    const errors: number[] = [];
    for (let i = 0; i < 400; i++) {
      const length = 20 + Math.floor(random() * 60);
      const a = Array.from({ length }, () => `w${Math.floor(random() * 5000)}`);
      const b = a.map((w) => (random() < i / 400 ? `v${Math.floor(random() * 5000)}` : w));
      errors.push(similarity(minHash(a), minHash(b)) - jaccard(a.join(' '), b.join(' ')));
    }
    const mean = errors.reduce((x, y) => x + y, 0) / errors.length;
    const rms = Math.sqrt(errors.reduce((x, y) => x + y * y, 0) / errors.length);
    // The standard error of one estimate is at most 0.0625; the mean of 400 at most ~0.003.
    expect(Math.abs(mean)).toBeLessThan(0.015);
    expect(rms).toBeLessThan(0.0625);
  });
});

describe('comparePair', () => {
  const stable = answerFeatures({ observation: answer('Jupiter is the largest planet in our solar system.', { usage: { input: 10, output: 12, cached: 0 } }), status: 200, latencyMs: 200, goldenCorrect: true });

  it('an identical answer: no flips, similarity 1, length ratio 1', () => {
    const same = comparePair(stable, { ...stable, latencyMs: 230 });
    expect(same).toMatchObject({ lengthRatio: 1, latencyDeltaMs: 30, similarity: 1, finishReasonChanged: false, refusal: undefined, goldenCorrect: undefined, failed: undefined, outputTokensDelta: 0 });
  });

  it('a wrong, twice-as-long answer: golden correctness lost, length ratio ~2, low similarity', () => {
    const text = 'Neptune is the largest planet in our solar system, bigger than every other planet we know of by far.';
    const wrong = answerFeatures({ observation: answer(text, { usage: { input: 10, output: 25, cached: 0 }, finishReason: 'length' }), status: 200, latencyMs: 450, goldenCorrect: false });
    const c = comparePair(stable, wrong);
    expect(c.goldenCorrect).toBe('lost');
    expect(c.lengthRatio).toBeCloseTo((text.length + 1) / (stable.chars + 1), 6);
    expect(c.lengthRatio).toBeGreaterThan(1.9);
    expect(c.outputTokensDelta).toBe(13);
    expect(c.finishReasonChanged).toBe(true);
    expect(c.similarity).toBeLessThan(0.6);
    expect(comparePair(wrong, stable).goldenCorrect).toBe('gained');
  });
});

describe('ShadowMetrics', () => {
  it('counts pairs by kind, flips by feature and direction, and observes the distributions', async () => {
    const { Registry } = await import('prom-client');
    const { ShadowMetrics } = await import('../../extproc/shadow/shadow-metrics.js');
    const registry = new Registry();
    const m = new ShadowMetrics(registry);
    const right = answerFeatures({ observation: answer('Jupiter is the largest planet.'), status: 200, latencyMs: 200, goldenCorrect: true });
    const wrong = answerFeatures({ observation: answer('Neptune is the largest planet by far, much bigger than Jupiter.'), status: 200, latencyMs: 700, goldenCorrect: false });
    const labels = { service: 'chat', version: 'v2', rollout_hash: 'h2' };
    m.record({ kind: 'candidate', requestId: 'r1', stable: right, other: wrong }, labels);
    m.record({ kind: 'noise', requestId: 'r1', stable: right, other: right }, labels);
    const text = await registry.metrics();
    expect(text).toContain('inference_shadow_pairs_total{service="chat",version="v2",rollout_hash="h2",pair="candidate"} 1');
    expect(text).toContain('inference_shadow_pairs_total{service="chat",version="v2",rollout_hash="h2",pair="noise"} 1');
    expect(text).toContain('inference_shadow_flips_total{service="chat",version="v2",rollout_hash="h2",pair="candidate",feature="golden-correct",direction="lost"} 1');
    expect(text).not.toMatch(/inference_shadow_flips_total\{[^}]*pair="noise"/);
    // The noise pair is identical: similarity 1 falls in the le="1" bucket but not le="0.95".
    expect(text).toContain('inference_shadow_similarity_bucket{le="0.95",service="chat",version="v2",rollout_hash="h2",pair="noise"} 0');
    expect(text).toContain('inference_shadow_similarity_bucket{le="1",service="chat",version="v2",rollout_hash="h2",pair="noise"} 1');
    expect(text).toContain('inference_shadow_latency_delta_seconds_sum{service="chat",version="v2",rollout_hash="h2",pair="candidate"} 0.5');
  });
});

describe('MemoryPairStore (pairs met in extproc, without Redis)', () => {
  const f = (text: string, latencyMs: number) => answerFeatures({ observation: { ...emptyObservation(), text, textLength: text.length }, status: 200, latencyMs });

  it('pairs either order, the stable side meeting both the candidate and its own second answer, each once', async () => {
    const store = new MemoryPairStore();
    expect(await store.record('r1', 'candidate', f('Lyon', 300))).toEqual([]);
    expect(await store.record('r1', 'stable-again', f('Paris', 90))).toEqual([]);
    const pairs = await store.record('r1', 'stable', f('Paris', 100), true);
    expect(pairs.map((p) => [p.kind, p.stable.latencyMs, p.other.latencyMs])).toEqual([['candidate', 100, 300], ['noise', 100, 90]]);
    expect(store.size).toBe(0);
    expect(await store.record('r2', 'stable', f('Paris', 100))).toEqual([]);
    expect((await store.record('r2', 'candidate', f('Paris', 110)))[0]).toMatchObject({ kind: 'candidate', stable: { latencyMs: 100 } });
  });

  it('is bounded: a side waits at most its TTL, and the oldest go first when full', async () => {
    let now = 0;
    const store = new MemoryPairStore({ ttlSeconds: 10, maxWaiting: 2, now: () => now });
    await store.record('a', 'stable', f('x', 1));
    now = 11_000;
    expect(await store.record('a', 'candidate', f('x', 1))).toEqual([]); // the stable side expired
    await store.record('b', 'stable', f('x', 1));
    await store.record('c', 'stable', f('x', 1)); // full: "a"'s candidate side goes
    expect(store.size).toBe(2);
    expect(await store.record('a', 'stable', f('x', 1))).toEqual([]);
  });
});
