import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { JudgeQueue } from '../../extproc/quality/judge-queue.js';
import type { JudgeResponseFormat } from '../../extproc/quality/judge/judge-client.js';
import { JudgeWorker } from '../../extproc/quality/judge/worker.js';
import { resolveModelPath } from '../../model/model-files.js';
import { startModelServer, type ModelServerHandle } from '../../model/server.js';
import { metricValue } from '../harness/dataplane.js';
import { realModelJudgeOptions } from '../harness/judge-worker.js';
import { startRedis, type RunningRedis } from '../harness/redis.js';

const logger = createLogger('judge-real-model-test', 'warn');
/** Each sample stands for 10 requests (10% sampling, every sample judged). */
const WEIGHT = 10;
const PAIRS: [prompt: string, answer: string][] = [
  ['What is the capital of France?', 'The capital of France is Paris.'],
  ['What is the largest planet in our solar system?', 'The largest planet in our solar system is Neptune.'],
  ['Who wrote the play Hamlet?', 'Hamlet was written by Charles Dickens.'],
  ['How many legs does a spider have?', 'A spider has eight legs.'],
];

/**
 * The LLM judge with a real model as the judge: SmolLM2-135M is a poor judge, and that is
 * the point: whatever it answers, every sample ends as exactly one verdict or one counted
 * judge error, and no reply that is not a verdict ever becomes a score.
 */
describe('LLM judge: the real SmolLM2 as the judge', () => {
  let redis: RunningRedis;
  let judge: ModelServerHandle;
  let queue: JudgeQueue;
  const workers: JudgeWorker[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    judge = await startModelServer({ host: '127.0.0.1', port: 0, version: 'judge', modelName: 'smollm2', engine: { modelPath: resolveModelPath('smollm2'), threads: 1, concurrency: 1, queueLimit: 8, contextSize: 1024 }, systemPrompt: '', temperature: 0, logger });
    await judge.ready;
  });

  afterAll(async () => {
    for (const worker of workers) await worker.stop();
    await queue?.close();
    await judge?.close();
    await redis?.stop();
  });

  /** Queues the pairs on `stream` (as extproc does) and runs a worker on it until all are finished. */
  async function judgeAll(stream: string, responseFormat: JudgeResponseFormat): Promise<{ metrics: string; published: Record<string, string>[] }> {
    queue = new JudgeQueue(redis.url, stream, 1000, logger, () => undefined);
    const worker = new JudgeWorker(realModelJudgeOptions({ redisUrl: redis.url, judgeUrl: judge.url, stream, responseFormat, maxTokens: 96 }), logger);
    workers.push(worker);
    await worker.start();
    // Offered only once the connection is up: the queue drops samples while Redis is unreachable.
    const probe = new Redis(redis.url);
    await probe.ping();
    await expect.poll(async () => {
      for (const [prompt, answer] of PAIRS) queue.offer({ service: 'chat', version: 'v2', rollout_hash: 'h2', prompt, answer, enqueued_at: String(Date.now()), weight: String(WEIGHT) });
      return probe.xlen(stream);
    }, { timeout: 5000 }).toBeGreaterThanOrEqual(PAIRS.length);
    const queued = await probe.xlen(stream);
    const finished = async () => {
      const text = await worker.registry.metrics();
      return metricValue(text, 'fledge_judge_samples_total', { result: 'scored' }) + metricValue(text, 'fledge_judge_samples_total', { result: 'judge-error' });
    };
    await expect.poll(finished, { timeout: 240_000, interval: 500 }).toBe(queued);
    const entries = (await probe.xrange(`${stream}:scores`, '-', '+')) as [string, string[]][];
    await probe.quit();
    const published = entries.map(([, fields]) => Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i]!, fields[2 * i + 1]!])));
    return { metrics: await worker.registry.metrics(), published };
  }

  it('asked for the verdict schema: verdicts and off-scale replies, each counted once', async () => {
    const { metrics, published } = await judgeAll('judge:schema', 'json_schema');
    const scored = metricValue(metrics, 'fledge_judge_samples_total', { result: 'scored' });
    const judgeErrors = metricValue(metrics, 'fledge_judge_samples_total', { result: 'judge-error' });
    expect(scored + judgeErrors).toBeGreaterThanOrEqual(PAIRS.length);
    // At temperature 0 and under the grammar this model gives some verdicts (see docs/quality.md).
    expect(scored).toBeGreaterThan(0);
    expect(metricValue(metrics, 'fledge_judge_calls_total', { result: 'ok' })).toBe(scored);
    expect(metricValue(metrics, 'fledge_judge_calls_total', { result: 'no-verdict' })).toBe(judgeErrors);
    expect(metricValue(metrics, 'fledge_judge_errors_total', { rollout_hash: 'h2' })).toBe(judgeErrors);
    const verdicts = metricValue(metrics, 'fledge_judge_verdicts_total', { rollout_hash: 'h2' });
    const hallucinated = metricValue(metrics, 'fledge_judge_verdicts_total', { rollout_hash: 'h2', hallucination: 'true' });
    expect(verdicts).toBe(scored);
    expect(metricValue(metrics, 'inference_hallucination_total', { rollout_hash: 'h2', evaluator: 'judge' })).toBe(hallucinated * WEIGHT);
    const score = metricValue(metrics, 'inference_quality_score', { rollout_hash: 'h2', evaluator: 'judge' });
    expect(score).toBeGreaterThanOrEqual(0);
    expect(score).toBeLessThanOrEqual(1);
    expect(published).toHaveLength(scored);
    for (const verdict of published) {
      expect(Number(verdict.score)).toBeGreaterThanOrEqual(0);
      expect(Number(verdict.score)).toBeLessThanOrEqual(1);
      expect(['true', 'false']).toContain(verdict.hallucination);
      expect(typeof verdict.reason).toBe('string');
    }
  }, 300_000);

  it('not asked for JSON: its prose replies are judge errors, never scores', async () => {
    const { metrics, published } = await judgeAll('judge:prose', 'none');
    const judgeErrors = metricValue(metrics, 'fledge_judge_samples_total', { result: 'judge-error' });
    expect(judgeErrors).toBeGreaterThanOrEqual(PAIRS.length);
    expect(metricValue(metrics, 'fledge_judge_samples_total', { result: 'scored' })).toBe(0);
    expect(metricValue(metrics, 'fledge_judge_errors_total', { rollout_hash: 'h2', problem: 'unparseable' })).toBe(judgeErrors);
    expect(metrics).not.toMatch(/^inference_quality_score\{/mu);
    expect(metricValue(metrics, 'inference_hallucination_total', { evaluator: 'judge' })).toBe(0);
    expect(published).toHaveLength(0);
  }, 300_000);
});
