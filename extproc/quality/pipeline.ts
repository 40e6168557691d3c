import type { Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import type { QualityConfig } from './config.js';
import { formatEvaluator } from './evaluators/format.js';
import { goldenEvaluator } from './evaluators/golden.js';
import { GoldenSet } from './evaluators/golden-set.js';
import { modelReportedEvaluator } from './evaluators/model-reported.js';
import type { Evaluator } from './evaluators/types.js';
import { JudgeQueue } from './judge-queue.js';
import { QualityMetrics } from './metrics.js';
import { ProbeRates } from './probe-rates.js';
import { SampleRecorder, type FinishedSample, type VerdictListener } from './recorder.js';
import { OffThreadBodyReader, type RequestBodyReader } from './request-body-reader.js';

/** Everything the quality processors share: config, golden set, metrics, and the off-path recorder. */
export interface QualityPipeline {
  config: QualityConfig;
  golden: GoldenSet;
  metrics: QualityMetrics;
  /** Each version's golden-probe hallucination rate, credited to its user requests. */
  probeRates: ProbeRates;
  /** Reads sampled request bodies (large ones off the event loop). */
  requestBodies: RequestBodyReader;
  /** Records a finished sample on a later turn of the event loop: never on the response's path. */
  submit(sample: FinishedSample): void;
  close(): Promise<void>;
}

export const EVALUATORS: readonly Evaluator[] = [goldenEvaluator, formatEvaluator, modelReportedEvaluator];

/** `onVerdict` hears every hallucination verdict (the guardrail's input). */
export function startQualityPipeline(config: QualityConfig, registry: Registry, logger: Logger, onVerdict?: VerdictListener): QualityPipeline {
  const log = logger.child({ part: 'quality' });
  const golden = config.golden.file ? GoldenSet.load(config.golden.file) : new GoldenSet([]);
  if (config.golden.file) log.info({ file: config.golden.file, entries: golden.entries.length }, 'golden set loaded');
  const metrics = new QualityMetrics(registry, config.scoreWindowSeconds);
  const judge = config.judge.redisUrl
    ? new JudgeQueue(config.judge.redisUrl, config.judge.stream, config.judge.maxLength, log, (result) => metrics.judgeQueue.inc({ result }))
    : undefined;
  const probeRates = new ProbeRates(config.probeRateWindowSeconds * 1000);
  const recorder = new SampleRecorder(config, metrics, EVALUATORS, judge, log, Math.random, probeRates, onVerdict);
  const requestBodies = new OffThreadBodyReader(golden.longestKey, log, { eager: true, count: (reader, result) => metrics.requestBodies.inc({ reader, result }) });
  return {
    config,
    golden,
    metrics,
    probeRates,
    requestBodies,
    submit(sample) {
      setImmediate(() => {
        try {
          recorder.record(sample);
        } catch (err) {
          log.warn({ err, service: sample.service, version: sample.version }, 'recording a sample failed');
        }
      });
    },
    async close() {
      await requestBodies.close();
      await judge?.close();
    },
  };
}
