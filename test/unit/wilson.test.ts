import { describe, expect, it } from 'vitest';
import { wilsonInterval } from '../../common/wilson.js';

describe('wilsonInterval', () => {
  it('matches published values', () => {
    // 17 of 25 (the 68%): Wilson 95% ≈ [0.4841, 0.8279].
    const [lo, hi] = wilsonInterval(17, 25);
    expect(lo).toBeCloseTo(0.4841, 3);
    expect(hi).toBeCloseTo(0.8279, 3);
    // 0 of 10: [0, 0.2775]; 10 of 10: [0.7225, 1].
    expect(wilsonInterval(0, 10)[1]).toBeCloseTo(0.2775, 3);
    expect(wilsonInterval(10, 10)[0]).toBeCloseTo(0.7225, 3);
    expect(wilsonInterval(0, 10)[0]).toBe(0);
    expect(wilsonInterval(10, 10)[1]).toBe(1);
  });

  it('narrows as n grows and rejects impossible counts', () => {
    const width = ([lo, hi]: [number, number]) => hi - lo;
    expect(width(wilsonInterval(50, 100))).toBeLessThan(width(wilsonInterval(5, 10)));
    expect(() => wilsonInterval(3, 0)).toThrow(/n must be a positive integer/);
    expect(() => wilsonInterval(11, 10)).toThrow(/outside/);
  });
});
