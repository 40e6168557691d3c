import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { DataPlane, metricValue } from '../harness/dataplane.js';
import { mapLimit } from '../harness/http-client.js';

const FAULTS = ['non-json', 'truncated-json', 'oversized', 'mislabelled'] as const;
const GOLDEN_Q = 'What is the capital of France?';

/** Starts a streamed answer and hangs up after its first bytes: the client cuts the stream. */
function cutStream(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', headers: { host, 'content-type': 'application/json' } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve(res.statusCode ?? 0);
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end(JSON.stringify({ messages: [{ role: 'user', content: 'long story' }], stream: true, stream_options: { include_usage: true } }));
  });
}

describe('sampled bodies: broken ones never hurt, golden ones are checked', () => {
  const dp = new DataPlane();

  beforeAll(async () => {
    const goldenFile = join(dp.dir, 'golden.yaml');
    writeFileSync(goldenFile, toYaml({ entries: [{ id: 'capital', prompt: GOLDEN_Q, expect: { facts: ['Paris'] } }] }));
    const knobs: Record<string, object> = {
      'golden/v1': { latency: { kind: 'fixed', ms: 1 }, hallucinationRate: 0.3, seed: 5, golden: [{ prompt: GOLDEN_Q, answer: 'The capital of France is Paris.', wrongAnswer: 'The capital of France is Lyon.' }] },
      'slow/v1': { latency: { kind: 'fixed', ms: 2000 }, ttftMs: 50, chunks: 20 },
    };
    // Answers of about 200 KB: read and evaluated on extproc's quality worker thread.
    const filler = ` ${'More detail follows in this long answer.'.repeat(5_000)}`;
    knobs['longgolden/v1'] = { latency: { kind: 'fixed', ms: 1 }, hallucinationRate: 0.3, seed: 7, golden: [{ prompt: GOLDEN_Q, answer: `The capital of France is Paris.${filler}`, wrongAnswer: `The capital of France is Lyon.${filler}` }] };
    for (const fault of FAULTS) knobs[`${fault}/v1`] = { latency: { kind: 'fixed', ms: 1 }, bodyFault: fault, oversizedBytes: 2 * 1024 * 1024 };
    const services = [...FAULTS, 'golden', 'longgolden', 'slow'].map((name) => ({ name, stable: 'v1', rolloutHashes: { v1: `hash-${name}` } }));
    const always = Object.fromEntries([...FAULTS, 'slow'].map((f) => [f, 1]));
    await dp.start(services, undefined, { knobs, extprocConfig: { quality: { sampling: { services: always }, golden: { file: goldenFile } } } });
  }, 60_000);

  afterAll(() => dp.stop());

  it('non-JSON, truncated, oversized and mislabelled bodies reach the client intact and extproc keeps serving', async () => {
    for (const fault of FAULTS) {
      const direct = await fetch(`${dp.sim(fault, 'v1').url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hello' }] }) });
      const expected = (await direct.text()).length;
      const responses = await mapLimit(Array.from({ length: 10 }, (_, i) => i), 5, () => dp.request({ host: fault }));
      for (const r of responses) {
        expect(r.status, fault).toBe(200);
        expect(r.body.length, fault).toBe(expected);
        expect(r.headers['x-fledge-version'], fault).toBe('v1');
      }
    }
    expect((await fetch(`http://127.0.0.1:${dp.adminPort}/healthz`)).status).toBe(200);
    expect(dp.extproc.child.exitCode).toBeNull();
    const outcome = async (service: string, o: string) => metricValue(await dp.metricsText(), 'fledge_quality_samples_total', { rollout_hash: `hash-${service}`, outcome: o });
    await expect.poll(() => outcome('non-json', 'malformed')).toBe(10);
    await expect.poll(() => outcome('truncated-json', 'malformed')).toBe(10);
    await expect.poll(() => outcome('oversized', 'oversized')).toBe(10);
    // Labelled JSON, sniffed as the SSE it is: its usage still counts.
    await expect.poll(() => outcome('mislabelled', 'parsed')).toBe(10);
    expect(metricValue(await dp.metricsText(), 'inference_tokens_total', { rollout_hash: 'hash-mislabelled', type: 'output' })).toBe(320);
    expect(metricValue(await dp.metricsText(), 'fledge_extproc_stream_errors_total', { kind: 'processing' })).toBe(0);
  });

  it('a stream the client cuts is recorded as truncated, with what was seen', async () => {
    const statuses = await mapLimit([1, 2, 3], 3, () => cutStream(dp.listenPort, 'slow'));
    expect(statuses).toEqual([200, 200, 200]);
    await expect
      .poll(async () => metricValue(await dp.metricsText(), 'fledge_quality_samples_total', { rollout_hash: 'hash-slow', outcome: 'truncated' }), { timeout: 10_000 })
      .toBe(3);
    expect(dp.extproc.child.exitCode).toBeNull();
  });

  it('every golden query is sampled at a 10% rate, and each wrong answer is one hallucination', async () => {
    const responses = await mapLimit(Array.from({ length: 40 }, (_, i) => i), 10, (i) =>
      dp.request({ host: 'golden', headers: { 'x-request-id': `golden-${i}` }, body: { messages: [{ role: 'user', content: GOLDEN_Q }] } }),
    );
    const wrong = responses.filter((r) => r.body.includes('Lyon')).length;
    expect(wrong).toBeGreaterThan(0);
    expect(wrong).toBeLessThan(40);
    const text = async () => dp.metricsText();
    await expect.poll(async () => metricValue(await text(), 'fledge_quality_scores_total', { rollout_hash: 'hash-golden', evaluator: 'golden' })).toBe(40);
    expect(metricValue(await text(), 'inference_hallucination_total', { rollout_hash: 'hash-golden' })).toBe(wrong);
    expect(metricValue(await text(), 'fledge_quality_score_sum_total', { rollout_hash: 'hash-golden', evaluator: 'golden' })).toBe(40 - wrong);
  });

  it('200 KB answers to a golden question are read and checked on the worker thread, each wrong one a hallucination', async () => {
    const responses = await mapLimit(Array.from({ length: 20 }, (_, i) => i), 5, (i) =>
      dp.request({ host: 'longgolden', headers: { 'x-request-id': `long-answer-${i}` }, body: { messages: [{ role: 'user', content: GOLDEN_Q }] } }),
    );
    expect(responses.every((r) => r.status === 200 && r.body.length > 200_000)).toBe(true);
    const wrong = responses.filter((r) => r.body.includes('Lyon')).length;
    expect(wrong).toBeGreaterThan(0);
    expect(wrong).toBeLessThan(20);
    const text = async () => dp.metricsText();
    const series = { rollout_hash: 'hash-longgolden', evaluator: 'golden' };
    await expect.poll(async () => metricValue(await text(), 'fledge_quality_scores_total', series)).toBe(20);
    expect(metricValue(await text(), 'fledge_quality_score_sum_total', series)).toBe(20 - wrong);
    expect(metricValue(await text(), 'inference_hallucination_total', { rollout_hash: 'hash-longgolden' })).toBe(wrong);
    expect(metricValue(await text(), 'fledge_quality_samples_total', { rollout_hash: 'hash-longgolden', outcome: 'parsed' })).toBe(20);
    // Each body parsed and each answer evaluated by the worker, none on the event loop.
    expect(metricValue(await text(), 'fledge_quality_worker_jobs_total', { job: 'response-json', result: 'done' })).toBe(20);
    expect(metricValue(await text(), 'fledge_quality_worker_jobs_total', { job: 'evaluate', result: 'done' })).toBe(20);
  });

  it('a golden question after 600 KB of conversation is read on the worker thread and checked like any other', async () => {
    const text = async () => dp.metricsText();
    const scoredBefore = metricValue(await text(), 'fledge_quality_scores_total', { rollout_hash: 'hash-golden', evaluator: 'golden' });
    const history = 'earlier turns of a long conversation '.repeat(16_000);
    const responses = await mapLimit(Array.from({ length: 5 }, (_, i) => i), 5, (i) =>
      dp.request({ host: 'golden', headers: { 'x-request-id': `long-golden-${i}` }, body: { messages: [{ role: 'system', content: history }, { role: 'user', content: GOLDEN_Q }] } }),
    );
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    await expect.poll(async () => metricValue(await text(), 'fledge_quality_scores_total', { rollout_hash: 'hash-golden', evaluator: 'golden' })).toBe(scoredBefore + 5);
    expect(metricValue(await text(), 'fledge_quality_request_bodies_total', { reader: 'worker', result: 'read' })).toBe(5);
    // The 40 short golden questions before were read where they arrived.
    expect(metricValue(await text(), 'fledge_quality_request_bodies_total', { reader: 'inline', result: 'read' })).toBeGreaterThanOrEqual(40);
  });
});
