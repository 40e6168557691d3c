import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config-error.js';
import { deepMerge, defaultKnobs, mergeKnobs, parseKnobs } from '../../sim/knobs.js';
import { sampleLatencyMs, streamSchedule } from '../../sim/latency.js';
import { fillerWords, splitIntoChunks } from '../../sim/openai.js';
import { forkRandom, seededRandom } from '../../sim/random.js';

describe('sim knobs', () => {
  it('has the documented defaults', () => {
    expect(defaultKnobs).toEqual({
      latency: { kind: 'fixed', ms: 20 },
      errorRate: 0,
      errorStatus: 500,
      tokens: { completion: 32, cachedPrompt: 0 },
      chunks: 8,
      hallucinationRate: 0,
      qualityScore: null,
      qualityHeaders: false,
    });
  });

  it('reports every bad field with its path', () => {
    try {
      parseKnobs({ errorRate: -0.1, errorStatus: 200, latency: { kind: 'lognormal', medianMs: 100, p95Ms: 50 }, qualityScore: 1.5 }, 'k.yaml');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const paths = (err as ConfigError).problems.map((p) => p.path).sort();
      expect(paths).toEqual(['errorRate', 'errorStatus', 'latency.p95Ms', 'qualityScore']);
      expect((err as ConfigError).message).toMatch(/^k\.yaml: /);
    }
  });

  it('merges patches deeply but replaces a latency whose kind changes', () => {
    const base = parseKnobs({ tokens: { completion: 5, cachedPrompt: 2 } });
    expect(mergeKnobs(base, { tokens: { completion: 7 } }).tokens).toEqual({ completion: 7, cachedPrompt: 2 });
    expect(mergeKnobs(base, { latency: { kind: 'uniform', minMs: 1, maxMs: 3 } }).latency).toEqual({ kind: 'uniform', minMs: 1, maxMs: 3 });
    expect(mergeKnobs(base, { latency: { ms: 99 } }).latency).toEqual({ kind: 'fixed', ms: 99 });
    expect(mergeKnobs(parseKnobs({ qualityScore: 0.5 }), { qualityScore: null }).qualityScore).toBeNull();
    expect(deepMerge({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
    expect(() => mergeKnobs(base, 'x')).toThrow(ConfigError);
  });
});

describe('sim randomness', () => {
  it('repeats a seeded sequence and spreads draws over [0, 1)', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(Array.from({ length: 10_000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
    expect(seededRandom(8)()).not.toBe(seededRandom(7)());
    expect(forkRandom(seededRandom(1))()).toBe(forkRandom(seededRandom(1))());
  });

  it('samples latency with the configured median and p95', () => {
    const random = seededRandom(3);
    const draws = Array.from({ length: 20_000 }, () => sampleLatencyMs({ kind: 'lognormal', medianMs: 100, p95Ms: 400 }, random)).sort(
      (x, y) => x - y,
    );
    expect(draws[10_000]).toBeGreaterThan(95);
    expect(draws[10_000]).toBeLessThan(105);
    expect(draws[19_000]).toBeGreaterThan(370);
    expect(draws[19_000]).toBeLessThan(430);
    const uniform = Array.from({ length: 1000 }, () => sampleLatencyMs({ kind: 'uniform', minMs: 10, maxMs: 20 }, random));
    expect(Math.min(...uniform)).toBeGreaterThanOrEqual(10);
    expect(Math.max(...uniform)).toBeLessThanOrEqual(20);
    expect(sampleLatencyMs({ kind: 'fixed', ms: 42 }, random)).toBe(42);
  });

  it('schedules the first chunk at the ttft and the rest up to the total', () => {
    expect(streamSchedule(100, undefined, 4)).toEqual({ chunkAtMs: [25, 50, 75, 100], endMs: 100 });
    expect(streamSchedule(100, 10, 1)).toEqual({ chunkAtMs: [10], endMs: 100 });
    expect(streamSchedule(100, 300, 2)).toEqual({ chunkAtMs: [300, 300], endMs: 300 });
    expect(streamSchedule(100, undefined, 0)).toEqual({ chunkAtMs: [], endMs: 100 });
  });

  it('splits filler text into chunks that join back to the whole', () => {
    const words = fillerWords(10);
    expect(words).toHaveLength(10);
    const pieces = splitIntoChunks(words, 4);
    expect(pieces).toHaveLength(4);
    expect(pieces.join('')).toBe(words.join(' '));
    expect(splitIntoChunks(fillerWords(2), 8)).toHaveLength(2);
    expect(splitIntoChunks([], 8)).toEqual([]);
  });
});
