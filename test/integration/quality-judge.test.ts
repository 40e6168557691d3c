import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProcess, waitForHttp, type ManagedProcess } from '../../local/child-process.js';
import { freePort } from '../../local/ports.js';
import { startSim, type SimHandle } from '../../sim/server.js';
import { CLI, DataPlane, metricValue } from '../harness/dataplane.js';
import { mapLimit } from '../harness/http-client.js';
import { startRedis, type RunningRedis } from '../harness/redis.js';

const SIM_MS = 20;
const JUDGE_TIMEOUT_MS = 1000;
/**
 * A request that waited for the judge would take at least the worker's 1 s call timeout
 * (or Redis' reconnect delay); 750 ms leaves room for a loaded 2-core machine.
 */
const NOT_SLOWED_MS = 750;
const TTL_S = 3;

describe('LLM judge through Redis: down, then up', () => {
  const dp = new DataPlane();
  let redis: RunningRedis;
  let worker: ManagedProcess;
  let judge: SimHandle | undefined;
  let judgePort: number;
  let workerAdmin: number;

  const workerMetrics = async () => (await fetch(`http://127.0.0.1:${workerAdmin}/metrics`)).text();

  /** Sends n sampled requests and returns each one's wall-clock latency. */
  async function traffic(n: number): Promise<number[]> {
    return mapLimit(Array.from({ length: n }, (_, i) => i), 5, async (i) => {
      const started = performance.now();
      const r = await dp.request({ host: 'judged', user: `u${i}`, body: { messages: [{ role: 'user', content: `question ${i}` }] } });
      expect(r.status).toBe(200);
      return performance.now() - started;
    });
  }

  beforeAll(async () => {
    redis = await startRedis();
    await dp.start([{ name: 'judged', stable: 'v1', rolloutHashes: { v1: 'hash-judged' } }], undefined, {
      knobs: { 'judged/v1': { latency: { kind: 'fixed', ms: SIM_MS } } },
      extprocConfig: { quality: { sampling: { services: { judged: 1 } }, judge: { redisUrl: redis.url } } },
    });
    judgePort = await freePort(); // nothing listens here yet: the judge is down
    workerAdmin = await freePort();
    worker = startProcess(
      'judge',
      process.execPath,
      [CLI, 'judge', '--redis-url', redis.url, '--endpoint', `http://127.0.0.1:${judgePort}`, '--ttl', String(TTL_S), '--rate', '50', '--timeout', String(JUDGE_TIMEOUT_MS), '--admin-port', String(workerAdmin)],
      join(dp.dir, 'judge.log'),
    );
    await waitForHttp(worker, `http://127.0.0.1:${workerAdmin}/readyz`);
  }, 60_000);

  afterAll(async () => {
    await worker?.stop();
    await judge?.close();
    await dp.stop();
    await redis?.stop();
  });

  it('with the judge down, requests are not slowed and their samples expire unjudged', async () => {
    const latencies = await traffic(10);
    expect(Math.max(...latencies)).toBeLessThan(NOT_SLOWED_MS);
    await expect.poll(async () => metricValue(await dp.metricsText(), 'fledge_quality_judge_enqueue_total', { result: 'queued' }), { timeout: 5000 }).toBe(10);
    await expect.poll(async () => metricValue(await workerMetrics(), 'fledge_judge_samples_total', { result: 'expired' }), { timeout: (TTL_S + 10) * 1000, interval: 200 }).toBe(10);
    const text = await workerMetrics();
    expect(metricValue(text, 'fledge_judge_calls_total', { result: 'error' })).toBeGreaterThan(0);
    expect(metricValue(text, 'fledge_judge_samples_total', { result: 'scored' })).toBe(0);
  }, 30_000);

  it('samples waiting while it is down are scored once it is back', async () => {
    const latencies = await traffic(10);
    expect(Math.max(...latencies)).toBeLessThan(NOT_SLOWED_MS);
    await expect.poll(async () => metricValue(await dp.metricsText(), 'fledge_quality_judge_enqueue_total', { result: 'queued' }), { timeout: 5000 }).toBe(20);
    // The judge comes up (a fledge sim acting as judge, calling every answer a hallucination) well within the samples' TTL.
    judge = await startSim({ host: '127.0.0.1', port: judgePort, version: 'judge', knobs: { latency: { kind: 'fixed', ms: 5 }, judgeScore: 0.7, hallucinationRate: 1 } });
    await expect.poll(async () => metricValue(await workerMetrics(), 'fledge_judge_samples_total', { result: 'scored' }), { timeout: 15_000, interval: 200 }).toBe(10);
    const text = await workerMetrics();
    expect(metricValue(text, 'inference_quality_score', { rollout_hash: 'hash-judged', evaluator: 'judge' })).toBeCloseTo(0.7, 6);
    // Sampled at rate 1, every sample judged: each hallucination verdict stands for one request.
    expect(metricValue(text, 'fledge_judge_verdicts_total', { rollout_hash: 'hash-judged', hallucination: 'true' })).toBe(10);
    expect(metricValue(text, 'inference_hallucination_total', { rollout_hash: 'hash-judged', evaluator: 'judge' })).toBe(10);
    expect(metricValue(text, 'fledge_judge_samples_total', { result: 'expired' })).toBe(10);
    expect(judge.stats().requests).toBeGreaterThanOrEqual(10);
  }, 30_000);

  it('with Redis itself gone, requests are still not slowed and samples are dropped and counted', async () => {
    await redis.stop();
    const latencies = await traffic(10);
    expect(Math.max(...latencies)).toBeLessThan(NOT_SLOWED_MS);
    await expect.poll(async () => metricValue(await dp.metricsText(), 'fledge_quality_judge_enqueue_total', { result: 'failed' }), { timeout: 5000 }).toBe(10);
    expect(dp.extproc.child.exitCode).toBeNull();
  }, 30_000);
});
