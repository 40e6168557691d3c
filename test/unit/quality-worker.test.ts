// Large JSON responses and long answers on the quality worker thread: the same observation and
// the same verdicts as on the event loop, handed back as a promise, and a worker that cannot
// answer leaves the sample without that part (counted), never a guess.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { qualityConfigSchema } from '../../extproc/quality/config.js';
import { EVALUATORS, evaluateSample } from '../../extproc/quality/evaluate-sample.js';
import { QualityMetrics } from '../../extproc/quality/metrics.js';
import { emptyObservation } from '../../extproc/quality/observation.js';
import { ResponseObserver, type JsonAnswerReader } from '../../extproc/quality/openai-response.js';
import { QualityThread } from '../../extproc/quality/quality-thread.js';
import { SampleRecorder, type FinishedSample, type OffThreadEvaluation } from '../../extproc/quality/recorder.js';
import { featuresOfAnswer } from '../../extproc/shadow/answer-of.js';

// The worker runs compiled JavaScript: the build's (make build), as extproc runs it.
const WORKER = pathToFileURL(resolve(import.meta.dirname, '../../dist/extproc/quality/quality-worker.js'));
const log = createLogger('test', 'silent');
const MAX = 1 << 20;

const threads: QualityThread[] = [];
afterEach(async () => {
  for (const t of threads.splice(0)) await t.close();
});
function thread(workerUrl = WORKER, timeoutMs?: number): QualityThread {
  const t = new QualityThread(0, log, { workerUrl, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  threads.push(t);
  return t;
}
const jsonReader = (t: QualityThread): JsonAnswerReader => async (body) => {
  const outcome = await t.run<'response-json'>({ kind: 'response-json', body, maxChars: MAX }, [body.buffer as ArrayBuffer]);
  return outcome.ok ? outcome.answer.answer : undefined;
};
const evaluator = (t: QualityThread): OffThreadEvaluation => async (sample, evaluators) => {
  const outcome = await t.run<'evaluate'>({ kind: 'evaluate', sample, evaluators });
  return outcome.ok ? outcome.answer.evaluation : undefined;
};
/** A worker script that exits at once: every job it gets fails. */
function dyingWorker(): URL {
  const file = join(mkdtempSync(join(tmpdir(), 'fledge-quality-worker-')), 'dying.mjs');
  writeFileSync(file, 'process.exit(3);\n');
  return pathToFileURL(file);
}

/** A chat completion whose answer is `content`, with usage, logprobs and a refusal field. */
function completion(content: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: { content: [{ token: 'a', logprob: -0.25 }, { token: 'b', logprob: -0.75 }] }, finish_reason: 'length' }],
      usage: { prompt_tokens: 40, completion_tokens: 30_000, prompt_tokens_details: { cached_tokens: 32 } },
    }),
  );
}

/** Pushes `body` in 16 KiB chunks, as Envoy streams it. */
function observer(body: Buffer, options: ConstructorParameters<typeof ResponseObserver>[3] = {}): ResponseObserver {
  const o = new ResponseObserver('application/json', MAX, () => 0, options);
  for (let at = 0; at < body.length; at += 16 * 1024) o.push(body.subarray(at, at + 16 * 1024));
  return o;
}

describe('large JSON responses are read on the quality worker thread', () => {
  it('a 300 KB answer: a promise of exactly the observation the event loop would have made', async () => {
    const body = completion(`The capital of France is Paris. ${'and more words '.repeat(20_000)}`);
    expect(body.length).toBeGreaterThan(300_000);
    const handedOver = observer(body, { offThread: jsonReader(thread()) }).finishOffThread(true);
    expect(handedOver).toBeInstanceOf(Promise);
    const offThread = await handedOver;
    const inline = observer(body).finish(true);
    expect(offThread).toEqual(inline);
    expect(offThread).toMatchObject({ kind: 'json', usage: { input: 40, output: 30_000, cached: 32 }, finishReason: 'length', malformed: false, truncated: false });
    expect(offThread.text.startsWith('The capital of France is Paris.')).toBe(true);
    expect(offThread.confidence).toBeCloseTo(Math.exp(-0.5), 10);
  });

  it('a small answer is read where it arrives; broken JSON off the thread is malformed, as inline', async () => {
    const reader = jsonReader(thread());
    const small = observer(completion('Paris.'), { offThread: reader }).finishOffThread(true);
    expect(small).not.toBeInstanceOf(Promise);
    expect(small).toMatchObject({ text: 'Paris.', usage: { input: 40, output: 30_000, cached: 32 } });
    const broken = completion('x'.repeat(100_000)).subarray(0, 90_000);
    const offThread = await observer(broken, { offThread: reader }).finishOffThread(true);
    expect(offThread).toMatchObject({ malformed: true, usage: undefined, text: '' });
    expect(offThread).toEqual(observer(broken).finish(true));
  });

  it('a job that cannot be sent (a value that does not clone) fails alone, at once; the thread goes on', async () => {
    const t = thread();
    const observation = { ...emptyObservation(), text: 'x', textLength: 1 };
    const unsendable = { service: 'chat', version: 'v1', rolloutHash: 'h1', status: 200, request: undefined, responseHeaders: new Map(), observation, golden: undefined, onDone: () => undefined };
    const outcome = await t.run<'evaluate'>({ kind: 'evaluate', sample: unsendable, evaluators: ['golden'] });
    expect(outcome).toMatchObject({ ok: false, why: 'error' });
    expect(outcome.ok ? '' : outcome.message).toContain('could not be sent');
    const next = observer(completion('w'.repeat(100_000)), { offThread: jsonReader(t) }).finishOffThread(true);
    expect((await next).textLength).toBe(100_000);
  });

  it('a worker that dies leaves the answer unread: no text, no usage, not a malformed body', async () => {
    const o = await observer(completion('y'.repeat(100_000)), { offThread: jsonReader(thread(dyingWorker())) }).finishOffThread(true);
    expect(o).toMatchObject({ unread: true, malformed: false, usage: undefined, text: '' });
  });
});

describe('long answers are evaluated on the quality worker thread', () => {
  const golden = { id: 'capital', prompt: 'What is the capital of France?', expect: { facts: ['Paris'], regex: 'capital.*paris' } };
  const labels = 'service="chat",version="v2",rollout_hash="h2"';
  function sample(text: string, over: Partial<FinishedSample> = {}): FinishedSample {
    const observation = { ...emptyObservation(), kind: 'json' as const, text, textLength: text.length, usage: { input: 10, output: 5, cached: 0 } };
    return { service: 'chat', version: 'v2', rolloutHash: 'h2', status: 200, request: { prompt: golden.prompt, stream: false, includeUsage: false, wantsJson: true, schema: { type: 'object' } }, responseHeaders: new Map(), observation, golden, probability: 1, ...over };
  }
  function recorder(offThread: OffThreadEvaluation) {
    const registry = new Registry();
    const metrics = new QualityMetrics(registry, 300);
    metrics.touch({ service: 'chat', version: 'v2', rollout_hash: 'h2' });
    return { registry, recorder: new SampleRecorder(qualityConfigSchema.parse({}), metrics, EVALUATORS, undefined, log, Math.random, undefined, undefined, offThread) };
  }

  it('the worker reaches the verdicts the event loop would: golden facts and regex, JSON format', async () => {
    const right = sample(`Lyon is big, but the capital of France is Paris. ${'filler '.repeat(20_000)}`);
    const wrong = sample(`${'filler '.repeat(20_000)} the capital of France is Lyon.`);
    const json = sample(JSON.stringify({ answer: 'Paris', notes: 'n'.repeat(100_000) }), { golden: undefined });
    const run = evaluator(thread());
    for (const s of [right, wrong, json]) {
      expect(s.observation.text.length).toBeGreaterThan(64 * 1024);
      expect(await run(s, EVALUATORS.map((e) => e.name))).toEqual(evaluateSample(s, EVALUATORS));
    }
    expect((await run(right, ['golden']))?.verdicts).toEqual([{ name: 'golden', verdict: { score: 1, hallucination: false } }]);
    expect((await run(wrong, ['golden']))?.verdicts).toEqual([{ name: 'golden', verdict: { score: 0, hallucination: true } }]);
    // Asked for JSON, answered with prose: format 0; answered with an object: 1.
    expect((await run(wrong, ['format']))?.verdicts).toEqual([{ name: 'format', verdict: { score: 0 } }]);
    expect((await run(json, ['format']))?.verdicts).toEqual([{ name: 'format', verdict: { score: 1 } }]);
  });

  it('the recorder records a long answer\'s verdicts when the worker answers, a short one at once', async () => {
    const { registry, recorder: r } = recorder(evaluator(thread()));
    r.record(sample('The capital of France is Paris.', { request: undefined }));
    expect(await registry.metrics()).toContain(`fledge_quality_evaluated_total{${labels},evaluator="golden"} 1`);
    r.record(sample(`${'filler '.repeat(20_000)} the capital of France is Lyon.`, { request: undefined }));
    // Not yet: the worker has it (its answer is a later macrotask; reading the registry takes microtasks).
    expect(await registry.metrics()).not.toContain('fledge_quality_hallucination_verdicts_total{');
    await expect.poll(async () => (await registry.metrics()).includes(`fledge_quality_hallucination_verdicts_total{${labels},evaluator="golden"} 1`)).toBe(true);
    const text = await registry.metrics();
    expect(text).toContain(`fledge_quality_evaluated_total{${labels},evaluator="golden"} 2`);
    expect(text).toContain(`inference_hallucination_total{${labels}} 1`);
    expect(text).toContain(`fledge_quality_score_sum_total{${labels},evaluator="golden"} 1`);
  });

  it('a worker that cannot evaluate: each evaluator counted as failed, no verdict, the sample still counted', async () => {
    const { registry, recorder: r } = recorder(evaluator(thread(dyingWorker())));
    r.record(sample(`${'filler '.repeat(20_000)} the capital of France is Paris.`));
    await expect.poll(async () => (await registry.metrics()).includes('fledge_quality_evaluator_errors_total{evaluator="golden"} 1')).toBe(true);
    const text = await registry.metrics();
    expect(text).toContain('fledge_quality_evaluator_errors_total{evaluator="format"} 1');
    expect(text).toContain(`fledge_quality_samples_total{${labels},outcome="parsed"} 1`);
    expect(text).not.toContain(`fledge_quality_evaluated_total{${labels},evaluator="golden"} 1`);
  });
});

describe('a long shadow answer is described on the quality worker thread', () => {
  it('the same features and similarity signature as on the event loop', async () => {
    const text = `The capital of France is Paris. ${Array.from({ length: 30_000 }, (_, i) => `word${i % 997}`).join(' ')}`;
    const observation = { ...emptyObservation(), kind: 'json' as const, text, textLength: text.length, usage: { input: 10, output: 30_000, cached: 0 }, finishReason: 'stop' };
    const golden = { id: 'capital', prompt: 'What is the capital of France?', expect: { facts: ['Paris'] } };
    const answer = { observation, status: 200, latencyMs: 812, request: { prompt: golden.prompt, stream: false, includeUsage: false, wantsJson: false, schema: undefined }, golden };
    const outcome = await thread().run<'features'>({ kind: 'features', answer });
    expect(outcome.ok).toBe(true);
    const inline = featuresOfAnswer(observation, 200, 812, answer.request, golden);
    expect(outcome.ok && outcome.answer.features).toEqual(inline);
    expect(inline).toMatchObject({ goldenCorrect: true, words: 30_006, failed: false });
    expect(inline.signature).toHaveLength(64);
  });
});
