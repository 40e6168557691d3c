import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { JudgeQueue } from '../../extproc/quality/judge-queue.js';
import type { JudgeResponseFormat } from '../../extproc/quality/judge/judge-client.js';
import { JudgeWorker } from '../../extproc/quality/judge/worker.js';
import { emptyObservation, type Observation } from '../../extproc/quality/observation.js';
import { answerFeatures } from '../../extproc/shadow/answer-features.js';
import { judgeTextOf, pairJudgeSample, pairSampleFields } from '../../extproc/shadow/pair-judge-sample.js';
import { ShadowPairLog, toRecord } from '../../extproc/shadow/pair-log.js';
import { ShadowPairStore, type PairSide } from '../../extproc/shadow/pair-store.js';
import type { ShadowReport } from '../../cli/shadow-report/report.js';
import { resolveModelPath } from '../../model/model-files.js';
import { startModelServer, type ModelServerHandle } from '../../model/server.js';
import { CLI, metricValue } from '../harness/dataplane.js';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { realModelJudgeOptions } from '../harness/judge-worker.js';
import { startRedis, type RunningRedis } from '../harness/redis.js';
import { parse as parseYaml } from 'yaml';

const logger = createLogger('shadow-pairwise-judge-test', 'warn');
const run = promisify(execFile);
const labels = { service: 'chat', version: 'v2', rolloutHash: 'h2' };
/** Shadowed requests: the stable's answer, the candidate's, and for the last one the stable's second answer (a noise pair). */
const REQUESTS: { prompt: string; stable: string; candidate: string; stableAgain?: string }[] = [
  { prompt: 'What is the capital of France?', stable: 'The capital of France is Paris.', candidate: 'The capital of France is Lyon.' },
  { prompt: 'How many legs does a spider have?', stable: 'A spider has eight legs.', candidate: 'Spiders have eight legs.' },
  { prompt: 'Who wrote the play Hamlet?', stable: 'Hamlet was written by Charles Dickens.', candidate: 'William Shakespeare wrote Hamlet.', stableAgain: 'Hamlet was written by William Shakespeare.' },
];
/** docs/shadow.md's shadow-preference metric, verbatim, for the rollout hash h2. */
function docsMetric(): { query: string; samplesQuery: string } {
  const docs = readFileSync(new URL('../../docs/shadow.md', import.meta.url), 'utf8');
  const block = /```yaml\n( +# shadow-preference[^\n]*\n[\s\S]*?)```/u.exec(docs)![1]!;
  const [metric] = parseYaml(block) as { provider: { prometheus: { query: string } }; samplesQuery: string }[];
  const h2 = (q: string) => q.replaceAll('{{args.canary-hash}}', 'h2');
  return { query: h2(metric!.provider.prometheus.query), samplesQuery: h2(metric!.samplesQuery) };
}
const observation = (text: string): Observation => ({ ...emptyObservation(), kind: 'json', text, textLength: text.length });

/**
 * The pairwise judge end to end on real parts: shadow answers meet in the real Redis pair
 * store carrying their text (as extproc does with the judge configured), completed pairs go
 * onto the pairs stream, and the real judge worker asks the real SmolLM2 in both orders.
 * A 135M judge's taste is not asserted (unit tests pin the combination); its bookkeeping is:
 * every pair ends as exactly one preference or one counted judge error, a preference took
 * exactly two calls (one per order), and a reply that is no verdict is never a preference.
 */
describe('pairwise LLM judge of shadow pairs: the real SmolLM2 as the judge', () => {
  let redis: RunningRedis;
  let client: Redis;
  let judge: ModelServerHandle;
  let prometheus: RunningPrometheus | undefined;
  const workers: JudgeWorker[] = [];
  const queues: JudgeQueue[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
    judge = await startModelServer({ host: '127.0.0.1', port: 0, version: 'judge', modelName: 'smollm2', engine: { modelPath: resolveModelPath('smollm2'), threads: 1, concurrency: 1, queueLimit: 8, contextSize: 1024 }, systemPrompt: '', temperature: 0, logger });
    await judge.ready;
  }, 120_000);

  afterAll(async () => {
    for (const worker of workers) await worker.stop();
    for (const queue of queues) await queue.close();
    await prometheus?.stop();
    client?.disconnect();
    await judge?.close();
    await redis?.stop();
  });

  /** Records every request's answers in the pair store and offers each completed pair: what extproc's shadow capture does. */
  async function offerPairs(stream: string, service: string): Promise<{ offered: number; kinds: Record<string, number> }> {
    const queue = new JudgeQueue(redis.url, stream, 1000, logger, () => undefined, 600);
    queues.push(queue);
    // Offered only once the connection is up: the queue drops entries while Redis is unreachable.
    await expect.poll(() => queue.connected, { timeout: 5000 }).toBe(true);
    const store = new ShadowPairStore(client, { service, ttlSeconds: 120 });
    const pairLog = new ShadowPairLog(client);
    const kinds: Record<string, number> = {};
    let offered = 0;
    for (const [i, r] of REQUESTS.entries()) {
      const id = `req-${i}`;
      const sides: [PairSide, string][] = [['candidate', r.candidate], ...(r.stableAgain ? ([['stable-again', r.stableAgain]] as [PairSide, string][]) : []), ['stable', r.stable]];
      for (const [side, text] of sides) {
        const isStable = side === 'stable';
        const features = answerFeatures({ observation: observation(text), status: 200, latencyMs: 10 });
        const pairs = await store.record(id, side, features, isStable && r.stableAgain !== undefined, judgeTextOf(true, observation(text), 200, r.prompt, isStable, 8000));
        for (const pair of pairs) {
          const sample = pairJudgeSample(pair, { ...labels, service }, Date.now());
          expect(sample).toBeDefined();
          queue.append(pairSampleFields(sample!));
          await pairLog.append(toRecord(pair, { ...labels, service }, Date.now()));
          offered++;
          kinds[pair.kind] = (kinds[pair.kind] ?? 0) + 1;
        }
      }
    }
    // The texts waited only in the pair's sides: none is left once the pairs are made.
    expect(await client.keys(`fledge:shadow:${service}:*`)).toEqual([]);
    await expect.poll(() => client.xlen(stream), { timeout: 5000 }).toBe(offered);
    // Entries on the pairs stream expire with it.
    expect(await client.ttl(stream)).toBeGreaterThan(500);
    return { offered, kinds };
  }

  /** `scraped`: a real Prometheus scrapes the worker from before the first pair (for the docs' AnalysisTemplate metric). */
  async function judgeAll(stream: string, responseFormat: JudgeResponseFormat, scraped = false): Promise<{ metrics: string; offered: number; kinds: Record<string, number>; service: string }> {
    const worker = new JudgeWorker(realModelJudgeOptions({ redisUrl: redis.url, judgeUrl: judge.url, stream: `${stream}:samples`, pairStream: stream, responseFormat, maxTokens: 64 }), logger);
    workers.push(worker);
    const adminPort = await worker.start();
    if (scraped) {
      prometheus = await startPrometheus([`127.0.0.1:${adminPort}`], 500);
      await prometheus.waitForScrapes(1);
    }
    const service = stream.replace(/\W/gu, '-');
    const { offered, kinds } = await offerPairs(stream, service);
    const finished = async () => {
      const text = await worker.registry.metrics();
      return metricValue(text, 'fledge_judge_pairs_total', { result: 'judged' }) + metricValue(text, 'fledge_judge_pairs_total', { result: 'judge-error' });
    };
    await expect.poll(finished, { timeout: 150_000, interval: 500 }).toBe(offered);
    // A finished pair's texts are deleted from the stream.
    await expect.poll(() => client.xlen(stream), { timeout: 5000 }).toBe(0);
    if (scraped) await prometheus!.waitForScrapes(2);
    return { metrics: await worker.registry.metrics(), offered, kinds, service };
  }

  const calls = (metrics: string, order: string, result: string) => metricValue(metrics, 'fledge_judge_pairwise_calls_total', { order, result });

  it('asked for the pairwise schema: every pair ends as one preference (two calls, one per order) or one counted judge error', async () => {
    const { metrics, offered, kinds, service } = await judgeAll('judge:pairs:schema', 'json_schema', true);
    expect(kinds).toEqual({ candidate: 3, noise: 1 });
    const judged = metricValue(metrics, 'fledge_judge_pairs_total', { result: 'judged' });
    const errors = metricValue(metrics, 'fledge_judge_pairs_total', { result: 'judge-error' });
    expect(judged + errors).toBe(offered);
    // Under the grammar the model's "better" can only be A, B or tie; a reply cut at max_tokens is an error.
    expect(judged).toBeGreaterThan(0);
    expect(metricValue(metrics, 'fledge_judge_pairwise_calls_total', { result: 'error' })).toBe(0);
    // Each pair was asked with the stable first exactly once; the candidate-first order exactly when that gave a verdict.
    expect(calls(metrics, 'stable-first', 'ok') + calls(metrics, 'stable-first', 'no-verdict')).toBe(offered);
    expect(calls(metrics, 'candidate-first', 'ok') + calls(metrics, 'candidate-first', 'no-verdict')).toBe(calls(metrics, 'stable-first', 'ok'));
    // A preference took both orders: judge calls answered with a verdict = 2 × pairs judged, plus first orders of pairs whose second failed.
    expect(calls(metrics, 'candidate-first', 'ok')).toBe(judged);
    expect(calls(metrics, 'stable-first', 'ok') + calls(metrics, 'candidate-first', 'ok')).toBe(2 * judged + calls(metrics, 'candidate-first', 'no-verdict'));
    expect(metricValue(metrics, 'fledge_judge_pairwise_errors_total', { rollout_hash: 'h2' })).toBe(errors);
    expect(metricValue(metrics, 'fledge_judge_pairwise_errors_total', { order: 'stable-first' })).toBe(calls(metrics, 'stable-first', 'no-verdict'));
    // One preference per judged pair, by kind; position-inconsistent pairs are among the ties.
    const preferences = metricValue(metrics, 'inference_shadow_preference_total', { rollout_hash: 'h2' });
    expect(preferences).toBe(judged);
    const inconsistent = metricValue(metrics, 'fledge_judge_pairwise_inconsistent_total', { rollout_hash: 'h2' });
    expect(inconsistent).toBeLessThanOrEqual(metricValue(metrics, 'inference_shadow_preference_total', { preferred: 'tie' }));
    for (const pair of ['candidate', 'noise']) {
      const errorsOfKind = metricValue(metrics, 'fledge_judge_pairwise_errors_total', { pair });
      const prefsOfKind = ['stable', 'candidate', 'tie'].reduce((s, preferred) => s + metricValue(metrics, 'inference_shadow_preference_total', { pair, preferred }), 0);
      expect(prefsOfKind + errorsOfKind).toBe(kinds[pair]);
    }
    // docs/shadow.md's shadow-preference metric on a real Prometheus: the stable's net wins over the candidate minus over itself.
    const count = (pair: string, preferred: string) => metricValue(metrics, 'inference_shadow_preference_total', { pair, preferred });
    const net = (pair: string) => (count(pair, 'stable') - count(pair, 'candidate')) / Math.max(1, count(pair, 'stable') + count(pair, 'candidate') + count(pair, 'tie'));
    const { query, samplesQuery } = docsMetric();
    const value = await prometheus!.query(query);
    expect(value).toHaveLength(1);
    expect(value[0]).toBeCloseTo(net('candidate') - net('noise'), 6);
    const samples = (await prometheus!.query(samplesQuery))[0]!;
    // increase() extrapolates to the end of its range by at most half a scrape interval: a few percent over the count.
    expect(samples).toBeGreaterThanOrEqual(count('candidate', 'stable') + count('candidate', 'candidate') + count('candidate', 'tie'));
    expect(samples).toBeLessThan(1.25 * (count('candidate', 'stable') + count('candidate', 'candidate') + count('candidate', 'tie')));
    // The report (the built CLI) reads the worker's preference log: the same counts, with intervals.
    await expect.poll(async () => (await client.llen(`fledge:shadow-preferences:${service}:h2`)), { timeout: 5000 }).toBe(judged);
    const { stdout } = await run(process.execPath, [CLI, 'shadow-report', service, '--redis', redis.url, '--json']);
    const report = JSON.parse(stdout) as ShadowReport;
    for (const pair of ['candidate', 'noise'] as const) {
      const judgedOfKind = ['stable', 'candidate', 'tie'].reduce((s, preferred) => s + metricValue(metrics, 'inference_shadow_preference_total', { pair, preferred }), 0);
      if (judgedOfKind === 0) continue;
      const summary = report.preferences![pair]!;
      expect(summary.n).toBe(judgedOfKind);
      for (const preferred of ['stable', 'candidate', 'tie'] as const) expect(summary[preferred].count).toBe(metricValue(metrics, 'inference_shadow_preference_total', { pair, preferred }));
      expect(summary.inconsistent.count).toBe(metricValue(metrics, 'fledge_judge_pairwise_inconsistent_total', { pair }));
      expect(summary.tie.ci95[0]).toBeLessThanOrEqual(summary.tie.rate);
      expect(summary.tie.ci95[1]).toBeGreaterThanOrEqual(summary.tie.rate);
    }
  }, 240_000);

  it('not asked for JSON: its prose replies are judge errors, never preferences', async () => {
    const { metrics, offered, service } = await judgeAll('judge:pairs:prose', 'none');
    expect(metricValue(metrics, 'fledge_judge_pairs_total', { result: 'judge-error' })).toBe(offered);
    expect(metricValue(metrics, 'fledge_judge_pairs_total', { result: 'judged' })).toBe(0);
    expect(metricValue(metrics, 'fledge_judge_pairwise_errors_total', { order: 'stable-first' })).toBe(offered);
    expect(calls(metrics, 'candidate-first', 'ok') + calls(metrics, 'candidate-first', 'no-verdict')).toBe(0);
    // The series exist (at 0, from the first pair read) but no reply became a preference.
    expect(metricValue(metrics, 'inference_shadow_preference_total', { rollout_hash: 'h2' })).toBe(0);
    expect(metricValue(metrics, 'fledge_judge_pairwise_inconsistent_total', { rollout_hash: 'h2' })).toBe(0);
    expect(await client.exists(`fledge:shadow-preferences:${service}:h2`)).toBe(0);
  }, 240_000);
});
