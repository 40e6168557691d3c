import type { Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import type { QualityConfig } from './config.js';
import { GoldenSet } from './evaluators/golden-set.js';
import { EVALUATORS, type Evaluation } from './evaluate-sample.js';
import type { Sample } from './evaluators/types.js';
import { JudgeQueue } from './judge-queue.js';
import { QualityMetrics } from './metrics.js';
import { ProbeRates } from './probe-rates.js';
import { SampleRecorder, type FinishedSample, type VerdictListener } from './recorder.js';
import type { JsonAnswerReader } from './openai-response.js';
import { QualityThread, type JobOutcome } from './quality-thread.js';
import type { AnswerToDescribe } from './quality-worker.js';
import type { AnswerFeatures } from '../shadow/answer-features.js';
import { OffThreadBodyReader, type RequestBodyReader } from './request-body-reader.js';

export { EVALUATORS };

/** Everything the quality processors share: config, golden set, metrics, and the off-path recorder. */
export interface QualityPipeline {
  config: QualityConfig;
  golden: GoldenSet;
  metrics: QualityMetrics;
  /** Each version's golden-probe hallucination rate, credited to its user requests. */
  probeRates: ProbeRates;
  /** Reads sampled request bodies (large ones off the event loop). */
  requestBodies: RequestBodyReader;
  /** The quality part's logger. */
  log: Logger;
  /** Reads large JSON responses on the quality worker thread (ResponseObserver's offThread). */
  readJson: JsonAnswerReader;
  /** A long answer's shadow features, from the quality worker thread; undefined when it could not. */
  describe(answer: AnswerToDescribe): Promise<AnswerFeatures | undefined>;
  /** Records a finished sample on a later turn of the event loop: never on the response's path. */
  submit(sample: FinishedSample): void;
  close(): Promise<void>;
}

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
  // One worker thread for every large body and long answer, started now: its start would eat into Envoy's message_timeout.
  const thread = new QualityThread(golden.longestKey, log, { eager: true });
  const counted = <K extends 'response-json' | 'evaluate' | 'features'>(job: K, outcome: JobOutcome<K>): JobOutcome<K> => {
    metrics.workerJobs.inc({ job, result: outcome.ok ? 'done' : outcome.why });
    if (!outcome.ok) log.warn({ job, error: outcome.message }, 'the quality worker could not do a job; its sample goes without that part');
    return outcome;
  };
  const evaluateOffThread = async (sample: Sample, evaluators: string[]): Promise<Evaluation | undefined> => {
    const outcome = counted('evaluate', await thread.run<'evaluate'>({ kind: 'evaluate', sample, evaluators }));
    return outcome.ok ? outcome.answer.evaluation : undefined;
  };
  const readJson: JsonAnswerReader = async (body) => {
    const outcome = counted('response-json', await thread.run<'response-json'>({ kind: 'response-json', body, maxChars: config.maxBodyBytes }, [body.buffer as ArrayBuffer]));
    return outcome.ok ? outcome.answer.answer : undefined;
  };
  const describe = async (answer: AnswerToDescribe): Promise<AnswerFeatures | undefined> => {
    const outcome = counted('features', await thread.run<'features'>({ kind: 'features', answer }));
    return outcome.ok ? outcome.answer.features : undefined;
  };
  const recorder = new SampleRecorder(config, metrics, EVALUATORS, judge, log, Math.random, probeRates, onVerdict, evaluateOffThread);
  const requestBodies = new OffThreadBodyReader(golden.longestKey, log, { thread, count: (reader, result) => metrics.requestBodies.inc({ reader, result }) });
  return {
    config,
    golden,
    metrics,
    probeRates,
    requestBodies,
    log,
    readJson,
    describe,
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
      await thread.close();
      await judge?.close();
    },
  };
}
