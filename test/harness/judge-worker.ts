import type { JudgeResponseFormat } from '../../extproc/quality/judge/judge-client.js';
import { DEFAULT_RUBRIC } from '../../extproc/quality/judge/rubric.js';
import type { JudgeWorkerOptions } from '../../extproc/quality/judge/worker.js';

/**
 * A judge worker's options for tests with the real model as the judge: everything judged at
 * once (no rate limit to speak of, one call at a time), the CPU model's slow answers allowed,
 * its admin server on a free port.
 */
export function realModelJudgeOptions(o: { redisUrl: string; judgeUrl: string; stream: string; pairStream?: string; responseFormat: JudgeResponseFormat; maxTokens: number }): JudgeWorkerOptions {
  return {
    redisUrl: o.redisUrl,
    stream: o.stream,
    ...(o.pairStream === undefined ? {} : { pairStream: o.pairStream }),
    group: 'fledge-judge',
    consumer: 'test',
    scoresStream: `${o.pairStream ?? o.stream}:scores`,
    endpoint: { url: o.judgeUrl, model: 'judge', apiKey: undefined, rubric: DEFAULT_RUBRIC, timeoutMs: 120_000, maxTokens: o.maxTokens, responseFormat: o.responseFormat },
    ratePerSecond: 100,
    concurrency: 1,
    ttlSeconds: 600,
    scoreWindowSeconds: 300,
    adminHost: '127.0.0.1',
    adminPort: 0,
  };
}
