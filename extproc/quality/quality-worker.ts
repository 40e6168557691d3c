/**
 * The quality worker thread (run by quality-thread.ts): reads large request bodies and large
 * JSON responses, and evaluates and describes long answers, off extproc's event loop. Every job is a pure
 * function of its message; an answer carries the job's id.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Sample } from './evaluators/types.js';
import { EVALUATORS, evaluateSample, type Evaluation } from './evaluate-sample.js';
import { readJsonAnswer, type JsonAnswer } from './read-json-answer.js';
import { readRequestBody } from './read-request-body.js';
import type { RequestFacts } from './openai-request.js';
import type { Observation } from './observation.js';
import type { GoldenEntry } from './evaluators/golden-set.js';
import { featuresOfAnswer } from '../shadow/answer-of.js';
import type { AnswerFeatures } from '../shadow/answer-features.js';

export type WorkerJob =
  | { id: number; kind: 'request-body'; body: Uint8Array; mayRewrite: boolean }
  | { id: number; kind: 'response-json'; body: Uint8Array; maxChars: number }
  /** `evaluators`: the names of the built-in evaluators to run. */
  | { id: number; kind: 'evaluate'; sample: Sample; evaluators: string[] }
  /** A shadow pair's side: the answer's features (similarity signature, golden, JSON). */
  | { id: number; kind: 'features'; answer: AnswerToDescribe };

export interface AnswerToDescribe {
  observation: Observation;
  status: number | undefined;
  latencyMs: number;
  request: RequestFacts | undefined;
  golden: GoldenEntry | undefined;
}

export type WorkerAnswer =
  | { id: number; kind: 'request-body'; facts: RequestFacts | undefined; goldenKey: string | undefined; usageRewrite: Uint8Array | undefined }
  | { id: number; kind: 'response-json'; answer: JsonAnswer }
  | { id: number; kind: 'evaluate'; evaluation: Evaluation }
  | { id: number; kind: 'features'; features: AnswerFeatures };

const longestGoldenKey = (workerData as { longestGoldenKey: number } | null)?.longestGoldenKey ?? 0;

function answer(job: WorkerJob): { answer: WorkerAnswer; transfer: ArrayBuffer[] } {
  switch (job.kind) {
    case 'request-body': {
      const read = readRequestBody(job.body, job.mayRewrite, longestGoldenKey);
      // Its own ArrayBuffer (a Buffer may share Node's pool), handed over rather than copied.
      const rewrite = read.usageRewrite ? new Uint8Array(read.usageRewrite) : undefined;
      return { answer: { id: job.id, kind: job.kind, facts: read.facts, goldenKey: read.goldenKey, usageRewrite: rewrite }, transfer: rewrite ? [rewrite.buffer] : [] };
    }
    case 'response-json':
      return { answer: { id: job.id, kind: job.kind, answer: readJsonAnswer(job.body, job.maxChars) }, transfer: [] };
    case 'evaluate':
      return { answer: { id: job.id, kind: job.kind, evaluation: evaluateSample(job.sample, EVALUATORS.filter((e) => job.evaluators.includes(e.name))) }, transfer: [] };
    case 'features': {
      const { observation, status, latencyMs, request, golden } = job.answer;
      return { answer: { id: job.id, kind: job.kind, features: featuresOfAnswer(observation, status, latencyMs, request, golden) }, transfer: [] };
    }
  }
}

parentPort?.on('message', (job: WorkerJob) => {
  try {
    const { answer: reply, transfer } = answer(job);
    parentPort!.postMessage(reply, transfer);
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) });
  }
});
