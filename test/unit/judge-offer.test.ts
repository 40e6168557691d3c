import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { qualityConfigSchema } from '../../extproc/quality/config.js';
import type { Sample } from '../../extproc/quality/evaluators/types.js';
import type { JudgeQueue, JudgeSample } from '../../extproc/quality/judge-queue.js';
import { QualityMetrics } from '../../extproc/quality/metrics.js';
import { emptyObservation } from '../../extproc/quality/observation.js';
import { EVALUATORS } from '../../extproc/quality/pipeline.js';
import { SampleRecorder } from '../../extproc/quality/recorder.js';

function sample(prompt: string, text: string, over: Partial<Sample> = {}): Sample {
  const observation = { ...emptyObservation(), kind: 'json' as const, text, textLength: text.length };
  return { service: 'chat', version: 'v2', rolloutHash: 'h2', status: 200, request: { prompt, stream: false, includeUsage: false, wantsJson: false, schema: undefined }, responseHeaders: new Map(), observation, golden: undefined, ...over };
}

describe('samples offered to the LLM judge', () => {
  const offered: JudgeSample[] = [];
  const queue = { offer: (s: JudgeSample) => offered.push(s) } as unknown as JudgeQueue;

  it('carry the weight 1 / (sampling chance × judge rate), so judge verdicts estimate all traffic', () => {
    offered.length = 0;
    const config = qualityConfigSchema.parse({ judge: { redisUrl: 'redis://127.0.0.1:1', rate: 0.5 } });
    // random() 0.25 < rate 0.5: this sample goes to the judge.
    const recorder = new SampleRecorder(config, new QualityMetrics(new Registry(), 300), EVALUATORS, queue, createLogger('t', 'silent'), () => 0.25);
    recorder.record({ ...sample('Tell me about Mars.', 'Mars is the fourth planet.'), probability: 0.1 });
    expect(offered).toHaveLength(1);
    expect(offered[0]).toMatchObject({ service: 'chat', version: 'v2', rollout_hash: 'h2', prompt: 'Tell me about Mars.', answer: 'Mars is the fourth planet.' });
    expect(Number(offered[0]!.weight)).toBeCloseTo(20, 9);
  });

  it('leave out golden answers, which already have a verdict from their reference', async () => {
    offered.length = 0;
    const registry = new Registry();
    const config = qualityConfigSchema.parse({ judge: { redisUrl: 'redis://127.0.0.1:1' } });
    const recorder = new SampleRecorder(config, new QualityMetrics(registry, 300), EVALUATORS, queue, createLogger('t', 'silent'), () => 0);
    const golden = { id: 'capital', prompt: 'What is the capital of France?', expect: { regex: '\\bParis\\b' } };
    recorder.record({ ...sample(golden.prompt, 'Lyon.', { golden }), probability: 1 });
    expect(offered).toHaveLength(0);
    expect(await registry.metrics()).toContain('fledge_quality_judge_enqueue_total{result="skipped"} 1');
  });
});
