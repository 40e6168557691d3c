import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { qualityConfigSchema } from '../../extproc/quality/config.js';
import { formatEvaluator } from '../../extproc/quality/evaluators/format.js';
import { goldenEvaluator } from '../../extproc/quality/evaluators/golden.js';
import { GoldenSet, checkGoldenAnswer } from '../../extproc/quality/evaluators/golden-set.js';
import { validateJson } from '../../extproc/quality/evaluators/json-schema.js';
import { modelReportedEvaluator } from '../../extproc/quality/evaluators/model-reported.js';
import type { Sample } from '../../extproc/quality/evaluators/types.js';
import { QualityMetrics } from '../../extproc/quality/metrics.js';
import { emptyObservation } from '../../extproc/quality/observation.js';
import { EVALUATORS } from '../../extproc/quality/pipeline.js';
import { SampleRecorder, costOf } from '../../extproc/quality/recorder.js';
import { sampleBucket, sampleOnHeaders, sampledByRate } from '../../extproc/quality/sampling.js';
import { ScoreWindow } from '../../extproc/quality/score-window.js';

const golden = new GoldenSet([
  { id: 'capital', prompt: 'What is the capital of France?', expect: { facts: ['Paris'] } },
  { id: 'year', service: 'chat', prompt: 'When did WW2 end?', expect: { regex: '\\b1945\\b' } },
  { id: 'json', prompt: 'Give me a user', expect: { jsonSchema: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 } } } } },
]);

function sample(text: string, over: Partial<Sample> = {}): Sample {
  const observation = { ...emptyObservation(), kind: 'json' as const, text, textLength: text.length };
  return { service: 'chat', version: 'v2', rolloutHash: 'h2', status: 200, request: undefined, responseHeaders: new Map(), observation, golden: undefined, ...over };
}

describe('sampling', () => {
  it('is deterministic by request id and close to the rate', () => {
    expect(sampleBucket('req-1')).toBe(sampleBucket('req-1'));
    const ids = Array.from({ length: 20_000 }, (_, i) => `req-${i}`);
    const share = ids.filter((id) => sampledByRate(id, 0.1)).length / ids.length;
    expect(share).toBeGreaterThan(0.09);
    expect(share).toBeLessThan(0.11);
    expect(sampledByRate(undefined, 1)).toBe(false);
    expect(ids.every((id) => sampledByRate(id, 1))).toBe(true);
  });

  it('applies per-service rates and always-sample rules', () => {
    const config = qualityConfigSchema.parse({ sampling: { services: { quiet: 0 }, always: [{ header: 'x-probe', equals: 'golden' }, { pathPrefix: '/v1/embeddings', service: 'quiet' }] } });
    const facts = (service: string, headers: Record<string, string> = {}, path = '/v1/chat/completions') => ({ service, requestId: 'r', path, headers: new Map(Object.entries(headers)) });
    expect(sampleOnHeaders(config, facts('quiet'))).toEqual({ reason: 'none', probability: 0 });
    expect(sampleOnHeaders(config, facts('quiet', { 'x-probe': 'golden' }))).toEqual({ reason: 'rule', probability: 1 });
    expect(sampleOnHeaders(config, facts('quiet', { 'x-probe': 'other' })).reason).toBe('none');
    expect(sampleOnHeaders(config, facts('quiet', {}, '/v1/embeddings')).reason).toBe('rule');
    expect(sampleOnHeaders(config, facts('other', {}, '/v1/embeddings')).probability).toBe(0.1);
  });
});

describe('golden set', () => {
  it('matches normalised prompts, per service', () => {
    expect(golden.match('any', '  what is the   CAPITAL of france? ')?.id).toBe('capital');
    expect(golden.match('chat', 'When did WW2 end?')?.id).toBe('year');
    expect(golden.match('other', 'When did WW2 end?')).toBeUndefined();
    expect(golden.covers('other')).toBe(true);
  });

  it('checks facts, regex and JSON schema; a wrong answer is a hallucination', () => {
    const g = (id: string) => golden.entries.find((e) => e.id === id)!;
    expect(checkGoldenAnswer(g('capital'), 'It is paris.').ok).toBe(true);
    expect(checkGoldenAnswer(g('year'), 'in 19456').ok).toBe(false);
    expect(checkGoldenAnswer(g('json'), '{"name":"a","age":3}').ok).toBe(true);
    expect(checkGoldenAnswer(g('json'), '{"name":"a","age":-3}')).toEqual({ ok: false, failed: '$.age: must be >= 0' });
    expect(goldenEvaluator.evaluate(sample('Lyon', { golden: g('capital') }))).toEqual({ score: 0, hallucination: true });
    expect(goldenEvaluator.evaluate(sample('Paris', { golden: g('capital') }))).toEqual({ score: 1, hallucination: false });
    const cut = sample('Par', { golden: g('capital') });
    cut.observation.truncated = true;
    expect(goldenEvaluator.evaluate(cut)).toBeUndefined();
  });

  it('validates JSON Schema with Ajv, naming where it fails', () => {
    const schema = { type: 'object', additionalProperties: false, properties: { tags: { type: 'array', items: { enum: ['a', 'b'] } } } };
    expect(validateJson(schema, { tags: ['a', 'b'] })).toBeUndefined();
    expect(validateJson(schema, { tags: ['c'] })).toBe('$.tags[0]: must be equal to one of the allowed values');
    expect(validateJson(schema, { other: 1 })).toBe('$: must NOT have additional properties');
  });
});

describe('format and model-reported evaluators', () => {
  it('scores JSON answers when JSON was asked, and flags refusals without a score', () => {
    const request = { prompt: 'p', stream: false, includeUsage: false, wantsJson: true, schema: { type: 'object', required: ['a'] } };
    expect(formatEvaluator.evaluate(sample('{"a":1}', { request }))).toEqual({ score: 1 });
    expect(formatEvaluator.evaluate(sample('{"b":1}', { request }))).toEqual({ score: 0 });
    expect(formatEvaluator.evaluate(sample('not json', { request }))).toEqual({ score: 0 });
    expect(formatEvaluator.evaluate(sample("I'm sorry, but I can't help with that."))).toEqual({ refusal: true });
    expect(formatEvaluator.evaluate(sample('Sure, here it is.'))).toBeUndefined();
  });

  // About the opt-in model-reported evaluator itself (off by default; a service opts in with
  // quality.modelReported.services), so self-reported headers are its input here.
  it('reads x-quality-score and x-hallucination', () => {
    const headers = new Map([['x-quality-score', '0.7'], ['x-hallucination', 'true']]);
    expect(modelReportedEvaluator.evaluate(sample('', { responseHeaders: headers }))).toEqual({ score: 0.7, hallucination: true });
    expect(modelReportedEvaluator.evaluate(sample('', { responseHeaders: new Map([['x-quality-score', '7']]) }))).toBeUndefined();
  });
});

describe('recording a sample', () => {
  it('prices usage from the table, cached input at its own price', () => {
    expect(costOf({ inputPerMillion: 2, outputPerMillion: 8, cachedInputPerMillion: 0.5 }, { input: 1000, output: 500, cached: 400 })).toBeCloseTo((600 * 2 + 400 * 0.5 + 500 * 8) / 1e6, 12);
    expect(costOf(undefined, { input: 1, output: 1, cached: 0 })).toBeUndefined();
  });

  // The self-report is opted in on purpose: the test is about merging two evaluators'
  // verdicts (the golden check of "Lyon" and a model-reported one) into one hallucination.
  it('scales counted quantities by 1/p and merges verdicts into one hallucination', async () => {
    const registry = new Registry();
    const metrics = new QualityMetrics(registry, 300);
    const config = qualityConfigSchema.parse({ modelReported: { services: ['chat'] }, prices: { v2: { inputPerMillion: 1e6, outputPerMillion: 2e6 } } });
    const recorder = new SampleRecorder(config, metrics, EVALUATORS, undefined, createLogger('t', 'silent'));
    const s = sample('Lyon', { golden: golden.entries[0], responseHeaders: new Map([['x-hallucination', 'true'], ['x-quality-score', '0.5']]) });
    s.observation.usage = { input: 10, output: 4, cached: 2 };
    recorder.record({ ...s, probability: 0.1 });
    const text = await registry.metrics();
    const labels = 'service="chat",version="v2",rollout_hash="h2"';
    expect(text).toContain(`inference_tokens_total{${labels},type="output"} 40`);
    expect(text).toContain(`inference_tokens_total{${labels},type="cached"} 20`);
    expect(text).toContain(`inference_cache_hits_total{${labels}} 10`);
    expect(text).toContain(`inference_cost_total{${labels}} 180`);
    expect(text).toContain(`inference_hallucination_total{${labels}} 10`);
    expect(text).toContain(`inference_quality_score{${labels},evaluator="golden"} 0`);
    expect(text).toContain(`inference_quality_score{${labels},evaluator="model-reported"} 0.5`);
  });

  it('keeps the quality gauge a mean over its window', () => {
    let now = 0;
    const w = new ScoreWindow(new Registry(), 'q', 'q', ['k'], 10, 3, () => now);
    w.add({ k: 'a' }, 1);
    now = 5_000;
    w.add({ k: 'a' }, 0);
    expect(w.means()).toEqual([{ labels: { k: 'a' }, mean: 0.5, count: 2 }]);
    now = 12_000;
    expect(w.means()).toEqual([{ labels: { k: 'a' }, mean: 0, count: 1 }]);
    for (const v of [1, 1, 1, 1]) w.add({ k: 'a' }, v);
    expect(w.means()).toEqual([{ labels: { k: 'a' }, mean: 1, count: 3 }]); // the 0 was the oldest: overwritten
    now = 30_000;
    expect(w.means()).toEqual([]);
  });
});
