import { describe, expect, it } from 'vitest';
import { parseSampleFields, sampleFields } from '../../extproc/quality/judge-queue.js';
import { RateLimiter } from '../../extproc/quality/judge/rate-limiter.js';
import { judgeMessages, parseJudgeScore } from '../../extproc/quality/judge/rubric.js';

describe('judge', () => {
  it('reads a score from JSON, fenced JSON or a bare number, and rejects out-of-range ones', () => {
    expect(parseJudgeScore('{"score": 0.75, "reason": "ok"}')).toBe(0.75);
    expect(parseJudgeScore('```json\n{"score": 1}\n```')).toBe(1);
    expect(parseJudgeScore('I would say 0.4 overall')).toBe(0.4);
    expect(parseJudgeScore('{"score": 7}')).toBeUndefined();
    expect(parseJudgeScore('no idea')).toBeUndefined();
    expect(judgeMessages('rubric', 'q', 'a')[1]?.content).toBe('Question:\nq\n\nAnswer:\na');
  });

  it('limits calls to the rate after the burst', () => {
    let now = 0;
    const limiter = new RateLimiter(2, 2, () => now);
    expect([limiter.tryTake(), limiter.tryTake()]).toEqual([0, 0]);
    expect(limiter.tryTake()).toBe(500);
    now = 500;
    expect(limiter.tryTake()).toBe(0);
    expect(limiter.tryTake()).toBeGreaterThan(0);
  });

  it('round-trips a sample through stream fields and rejects incomplete ones', () => {
    const s = { service: 's', version: 'v', rollout_hash: 'h', prompt: 'p', answer: 'a', enqueued_at: '1' };
    expect(parseSampleFields(sampleFields(s))).toEqual(s);
    expect(parseSampleFields(['service', 's'])).toBeUndefined();
  });
});
