import type { RequestFacts } from './openai-request.js';
import type { ResponseObserver } from './openai-response.js';
import type { GoldenEntry } from './evaluators/golden-set.js';
import type { SampleReason } from './sampling.js';

/** A request's sampling state, carried in its RequestContext from headers to the last body chunk. */
export interface SampleState {
  /** Why it is sampled so far ('none': only its request body is being read, for golden matching). */
  reason: SampleReason;
  /** Chance it was sampled (1/weight of everything it counts). */
  probability: number;
  request: RequestFacts | undefined;
  /** The request body was larger than the cap (only part of it was seen). */
  requestOversized: boolean;
  golden: GoldenEntry | undefined;
  status: number | undefined;
  responseHeaders: Map<string, string>;
  observer: ResponseObserver | undefined;
  done: boolean;
  /** content-length was removed on the request headers, so the body may change length (usage injection). */
  mayRewriteBody: boolean;
}

export function newSampleState(reason: SampleReason, probability: number): SampleState {
  return { reason, probability, request: undefined, requestOversized: false, golden: undefined, status: undefined, responseHeaders: new Map(), observer: undefined, done: false, mayRewriteBody: false };
}
