import type { RequestFacts } from '../openai-request.js';
import type { Observation } from '../observation.js';
import type { GoldenEntry } from './golden-set.js';

/** One sampled request/response pair, complete, handed to the evaluators after the response. */
export interface Sample {
  service: string;
  version: string;
  rolloutHash: string;
  status: number | undefined;
  request: RequestFacts | undefined;
  /** Response headers (lower-case keys) the model-reported evaluator reads. */
  responseHeaders: ReadonlyMap<string, string>;
  observation: Observation;
  /** The golden entry this request's prompt matched, if any. */
  golden: GoldenEntry | undefined;
}

/** What one evaluator concluded; fields it has no opinion on stay undefined. */
export interface Verdict {
  /** Quality in [0, 1]. */
  score?: number;
  hallucination?: boolean;
  refusal?: boolean;
}

/** A pluggable evaluator: a pure function of the sample, run off the request path. */
export interface Evaluator {
  readonly name: string;
  evaluate(sample: Sample): Verdict | undefined;
}
