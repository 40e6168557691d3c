import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { sampledByRate } from '../../extproc/quality/sampling.js';
import { DataPlane, metricValue } from '../harness/dataplane.js';
import { mapLimit } from '../harness/http-client.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { PROBE_TEST_GOLDEN_FILE, PROBE_TEST_QA } from '../harness/golden-answers.js';

/**
 * The seed's four analysis queries (verbatim from test/fixtures/seed/analysis-template.yaml,
 * hash filled in) and the cost queries, evaluated by a real Prometheus scraping a real
 * extproc behind a real Envoy, return what the simulated models were set to. Quality and
 * hallucination come from extproc's golden checks of the answers' text (every chat request
 * asks a golden question; the sim answers it wrongly at its hallucinationRate), compared
 * with the right/wrong answers this test itself received: no self-reported score.
 */
const template = parseYaml(readFileSync(join(import.meta.dirname, '../fixtures/seed/analysis-template.yaml'), 'utf8')) as {
  spec: { metrics: { name: string; provider: { prometheus: { query: string } } }[] };
};
function seedQuery(name: string, hash: string): string {
  const metric = template.spec.metrics.find((m) => m.name === name);
  if (!metric) throw new Error(`seed template has no metric ${name}`);
  return metric.provider.prometheus.query.replaceAll('{{args.canary-hash}}', hash);
}

/** The documented one-liners (docs/metrics.md). */
const perRequest = (metric: string, hash: string, extra = '') =>
  `sum(rate(${metric}{rollout_hash="${hash}"${extra}}[10m])) / sum(rate(inference_requests_total{rollout_hash="${hash}"}[10m]))`;

const PROMPT_TOKENS = 100;
const versions = {
  v1: { hash: 'hash-v1', latencyMs: 150, errorRate: 0.02, hallucinationRate: 0.05, completion: 32, cached: 60, cacheHitRate: 0.5 },
  v2: { hash: 'hash-v2', latencyMs: 800, errorRate: 0, hallucinationRate: 0.2, completion: 64, cached: 0, cacheHitRate: 0 },
} as const;
const GOLDEN_FILE = PROBE_TEST_GOLDEN_FILE;
const QA = PROBE_TEST_QA;
/** What each version's answers to the measured golden requests were, as this test received them. */
const received: Record<string, { right: number; wrong: number; requests: number }> = {};
const prices = { v1: { inputPerMillion: 1000, outputPerMillion: 2000, cachedInputPerMillion: 500 }, v2: { inputPerMillion: 3000, outputPerMillion: 6000 } };
// extproc's bucket bounds; the set latencies sit 100-200 ms below their bucket's top, room for a loaded machine.
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2];

function expectedCostPerRequest(v: (typeof versions)[keyof typeof versions], p: { inputPerMillion: number; outputPerMillion: number; cachedInputPerMillion?: number }): number {
  const answered = 1 - v.errorRate;
  const hit = (PROMPT_TOKENS - v.cached) * p.inputPerMillion + v.cached * (p.cachedInputPerMillion ?? p.inputPerMillion);
  const miss = PROMPT_TOKENS * p.inputPerMillion;
  return (answered * (v.cacheHitRate * hit + (1 - v.cacheHitRate) * miss + v.completion * p.outputPerMillion)) / 1e6;
}

describe('quality signals through Envoy, extproc and Prometheus', () => {
  const dp = new DataPlane();
  let prom: RunningPrometheus;
  const USERS = 600;

  beforeAll(async () => {
    const knobs = Object.fromEntries(
      Object.entries(versions).map(([version, v], i) => [
        `chat/${version}`,
        {
          latency: { kind: 'fixed' as const, ms: v.latencyMs },
          errorRate: v.errorRate,
          hallucinationRate: v.hallucinationRate,
          golden: QA,
          tokens: { prompt: PROMPT_TOKENS, completion: v.completion, cachedPrompt: v.cached, cacheHitRate: v.cacheHitRate },
          seed: 11 + i,
        },
      ]),
    );
    knobs['stream/v1'] = { latency: { kind: 'fixed', ms: 300 }, ttftMs: 170, chunks: 6, tokens: { prompt: 10, completion: 24 }, confidence: 0.8, seed: 3 } as never;
    knobs['sampled/v1'] = { latency: { kind: 'fixed', ms: 1 } } as never;
    await dp.start(
      [
        { name: 'chat', stable: 'v1', canary: 'v2', canaryWeight: 50, rolloutHashes: { v1: versions.v1.hash, v2: versions.v2.hash } },
        { name: 'stream', stable: 'v1', rolloutHashes: { v1: 'hash-stream' } },
        { name: 'sampled', stable: 'v1', rolloutHashes: { v1: 'hash-sampled' } },
      ],
      undefined,
      { knobs, extprocConfig: { quality: { sampling: { services: { chat: 1, stream: 1 } }, golden: { file: GOLDEN_FILE, inspect: 'sampled' }, prices } } },
    );
    prom = await startPrometheus([`127.0.0.1:${dp.adminPort}`], 1000);
    // One request per series, then a scrape: every series starts before the measured traffic.
    await mapLimit(['a', 'b', 'c', 'd'], 4, (u) => dp.request({ host: 'chat', user: `warm-${u}` }));
    await dp.request({ host: 'stream', body: { messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } } });
    await prom.waitForScrapes(1);
    for (const v of Object.keys(versions)) received[v] = { right: 0, wrong: 0, requests: 0 };
    await mapLimit(Array.from({ length: USERS }, (_, i) => i), 60, async (i) => {
      const qa = QA[i % QA.length]!;
      const res = await dp.request({ host: 'chat', user: `user-${i}`, body: { model: 'chat', messages: [{ role: 'user', content: qa.prompt }] } });
      const count = received[res.headers['x-fledge-version'] as string];
      if (!count) return;
      count.requests++;
      if (res.status !== 200) return;
      const text = (JSON.parse(res.body) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
      if (text === qa.answer) count.right++;
      else if (text === qa.wrongAnswer) count.wrong++;
      else throw new Error(`unexpected answer to "${qa.prompt}": ${text}`);
    });
    await mapLimit(Array.from({ length: 60 }, (_, i) => i), 20, () =>
      dp.request({ host: 'stream', body: { messages: [{ role: 'user', content: 'stream please' }], stream: true, logprobs: true, stream_options: { include_usage: true } } }),
    );
    await prom.waitForScrapes(2);
  }, 120_000);

  afterAll(async () => {
    await prom?.stop();
    await dp.stop();
  });

  for (const [version, v] of Object.entries(versions)) {
    describe(`${version} (rollout_hash ${v.hash})`, () => {
      it(`error-rate is the sim's errorRate ${v.errorRate} (±0.02), and the share the sim actually failed (±0.01)`, async () => {
        const [value] = await prom.query(seedQuery('error-rate', v.hash));
        expect(value).toBeGreaterThanOrEqual(Math.max(0, v.errorRate - 0.02));
        expect(value).toBeLessThanOrEqual(v.errorRate + 0.02);
        const stats = dp.sim('chat', version).stats();
        expect(Math.abs(value! - stats.errors / stats.requests)).toBeLessThanOrEqual(0.01);
      });

      it(`p95-latency lies in the histogram bucket holding the sim's ${v.latencyMs} ms`, async () => {
        const [value] = await prom.query(seedQuery('p95-latency', v.hash));
        const seconds = v.latencyMs / 1000;
        const upper = LATENCY_BUCKETS.find((b) => b >= seconds)!;
        const lower = LATENCY_BUCKETS[LATENCY_BUCKETS.indexOf(upper) - 1]!;
        expect(value).toBeGreaterThan(lower);
        expect(value).toBeLessThanOrEqual(upper);
      });

      it('quality-score is the share of golden answers that were right, as received (±0.001)', async () => {
        const [value] = await prom.query(seedQuery('quality-score', v.hash));
        const got = received[version]!;
        expect(got.right + got.wrong).toBeGreaterThan(100);
        expect(value).toBeCloseTo(got.right / (got.right + got.wrong), 3);
      });

      it(`hallucination-rate is the wrong golden answers per request, as received (±0.02), near the sim's ${v.hallucinationRate} (±0.06)`, async () => {
        const [value] = await prom.query(seedQuery('hallucination-rate', v.hash));
        const got = received[version]!;
        expect(Math.abs(value! - got.wrong / got.requests)).toBeLessThanOrEqual(0.02);
        expect(Math.abs(value! - v.hallucinationRate * (1 - v.errorRate))).toBeLessThanOrEqual(0.06);
      });

      it(`tokens per request is the sim's completion ${v.completion} x answered share (±3%)`, async () => {
        const [output] = await prom.query(perRequest('inference_tokens_total', v.hash, ',type="output"'));
        expect(output! / (v.completion * (1 - v.errorRate))).toBeGreaterThan(0.97);
        expect(output! / (v.completion * (1 - v.errorRate))).toBeLessThan(1.03);
        const [input] = await prom.query(perRequest('inference_tokens_total', v.hash, ',type="input"'));
        expect(input! / (PROMPT_TOKENS * (1 - v.errorRate))).toBeCloseTo(1, 1);
      });

      it(`cache hit rate is the sim's cacheHitRate ${v.cacheHitRate} (±0.07)`, async () => {
        const [value] = await prom.query(perRequest('inference_cache_hits_total', v.hash));
        expect(Math.abs(value! - v.cacheHitRate * (1 - v.errorRate))).toBeLessThanOrEqual(0.07);
      });

      it('cost per request follows the price table (±10%)', async () => {
        const [value] = await prom.query(perRequest('inference_cost_total', v.hash));
        const expected = expectedCostPerRequest(v, prices[version as keyof typeof prices]);
        expect(value! / expected).toBeGreaterThan(0.9);
        expect(value! / expected).toBeLessThan(1.1);
      });
    });
  }

  it('records time to first token of streams near the sim’s 170 ms', async () => {
    const [mean] = await prom.query(
      'sum(rate(inference_time_to_first_token_seconds_sum{rollout_hash="hash-stream"}[10m])) / sum(rate(inference_time_to_first_token_seconds_count{rollout_hash="hash-stream"}[10m]))',
    );
    // Never earlier than the sim's first token; up to 130 ms of Envoy/extproc/loaded-machine delay on top.
    expect(mean).toBeGreaterThanOrEqual(0.17);
    expect(mean).toBeLessThan(0.3);
    const [tokens] = await prom.query(perRequest('inference_tokens_total', 'hash-stream', ',type="output"'));
    expect(tokens).toBeCloseTo(24, 1);
    // logprobs → confidence: the sim reports every token at probability 0.8.
    const [confidence] = await prom.query('sum(rate(fledge_quality_confidence_sum{rollout_hash="hash-stream"}[10m])) / sum(rate(fledge_quality_confidence_count{rollout_hash="hash-stream"}[10m]))');
    expect(confidence).toBeCloseTo(0.8, 6);
  });

  it('samples exactly the requests whose x-request-id hashes under the 10% default rate', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `quality-test-${i}`);
    await mapLimit(ids, 30, (id) => dp.request({ host: 'sampled', headers: { 'x-request-id': id } }));
    const predicted = ids.filter((id) => sampledByRate(id, 0.1)).length;
    expect(predicted).toBeGreaterThan(15);
    await expect
      .poll(async () => metricValue(await dp.metricsText(), 'fledge_quality_samples_total', { rollout_hash: 'hash-sampled' }), { timeout: 5000 })
      .toBe(predicted);
    expect(metricValue(await dp.metricsText(), 'fledge_quality_sampled_total', { rollout_hash: 'hash-sampled', reason: 'rate' })).toBe(predicted);
  });
});
