import { describe, expect, it } from 'vitest';
import { parseSampleFields, sampleFields } from '../../extproc/quality/judge-queue.js';
import { RateLimiter } from '../../extproc/quality/judge/rate-limiter.js';
import { judgeMessages, parseJudgeVerdict, REASON_MAX_CHARS } from '../../extproc/quality/judge/rubric.js';

describe('judge', () => {
  it('reads a verdict from JSON, fenced JSON or the JSON object inside prose', () => {
    expect(parseJudgeVerdict('{"score": 0.75, "hallucination": false, "reason": "ok"}')).toEqual({ ok: true, verdict: { score: 0.75, hallucination: false, reason: 'ok' } });
    expect(parseJudgeVerdict('```json\n{"score": 1, "hallucination": true}\n```')).toEqual({ ok: true, verdict: { score: 1, hallucination: true, reason: '' } });
    expect(parseJudgeVerdict('Here is my verdict: {"score": 0, "hallucination": "True", "reason": "Neptune is not the largest"} hope it helps')).toEqual({ ok: true, verdict: { score: 0, hallucination: true, reason: 'Neptune is not the largest' } });
    const long = parseJudgeVerdict(JSON.stringify({ score: 0.5, hallucination: false, reason: 'x'.repeat(1000) }));
    expect(long.ok && long.verdict.reason.length).toBe(REASON_MAX_CHARS);
    expect(judgeMessages('rubric', 'q', 'a')[1]?.content).toBe('Question:\nq\n\nAnswer:\na');
  });

  it('never turns a reply that is no verdict into a score: each says what is wrong', () => {
    const problem = (reply: string) => {
      const parsed = parseJudgeVerdict(reply);
      return parsed.ok ? 'verdict' : parsed.problem;
    };
    expect(problem('I would say 0.4 overall')).toBe('unparseable');
    expect(problem('The answer is: Paris')).toBe('unparseable');
    expect(problem('')).toBe('unparseable');
    expect(problem('[0.5, true]')).toBe('unparseable');
    expect(problem('{"score": "0.5", "hallucination": false}')).toBe('unparseable');
    expect(problem('{"score": null, "hallucination": false}')).toBe('unparseable');
    expect(problem('{"score": 7, "hallucination": false}')).toBe('off-scale');
    expect(problem('{"score": 2018, "hallucination": false, "reason": "False"}')).toBe('off-scale');
    expect(problem('{"score": -0.1, "hallucination": false}')).toBe('off-scale');
    expect(problem('{"score": 0.5, "reason": "The answer is not provided."}')).toBe('no-hallucination');
    expect(problem('{"score": 0.5, "hallucination": "maybe"}')).toBe('no-hallucination');
    expect(problem('{"score": 0.5, "hallucination": 1}')).toBe('no-hallucination');
    const parsed = parseJudgeVerdict('{"score": 7, "hallucination": false}');
    expect(!parsed.ok && parsed.detail).toMatch(/"score" 7 is outside \[0, 1\]/);
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
    const s = { service: 's', version: 'v', rollout_hash: 'h', prompt: 'p', answer: 'a', enqueued_at: '1', weight: '10' };
    expect(parseSampleFields(sampleFields(s))).toEqual(s);
    expect(parseSampleFields(['service', 's'])).toBeUndefined();
    // Queued before weights existed: stands for one request. A weight below 1 is nonsense.
    const { weight: _weight, ...old } = s;
    expect(parseSampleFields(Object.entries(old).flat())).toEqual({ ...old, weight: '1' });
    expect(parseSampleFields(sampleFields({ ...s, weight: '0.5' }))).toBeUndefined();
  });
});
