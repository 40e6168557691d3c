/** What extproc learned from one sampled response (all optional: bodies lie, break and stop). */
export interface Observation {
  kind: 'json' | 'sse' | 'unknown';
  /** Bytes of body seen (all of them, also past the size cap). */
  bytes: number;
  /** Parsed OpenAI usage. */
  usage: { input: number; output: number; cached: number } | undefined;
  finishReason: string | undefined;
  /** The answer's text (up to the size cap) and its full length in characters. */
  text: string;
  textLength: number;
  /** exp(mean token logprob) when the response carried logprobs. */
  confidence: number | undefined;
  /** Seconds from request headers to the first content token (streams only). */
  ttftSeconds: number | undefined;
  /** The model's refusal field, when set. */
  refusal: string | undefined;
  /** The stream ended before end_of_stream (client cut, timeout). */
  truncated: boolean;
  oversized: boolean;
  /** Body was not the OpenAI JSON or SSE it should have been. */
  malformed: boolean;
  /** A large body the worker thread could not read (it died or timed out): nothing is known of it. */
  unread?: boolean;
}

/** Whether the body was read whole: not cut, not over the cap, not broken, not left unread. */
export function readWhole(o: Observation): boolean {
  return !o.truncated && !o.oversized && !o.malformed && o.unread !== true;
}

export function emptyObservation(): Observation {
  return {
    kind: 'unknown',
    bytes: 0,
    usage: undefined,
    finishReason: undefined,
    text: '',
    textLength: 0,
    confidence: undefined,
    ttftSeconds: undefined,
    refusal: undefined,
    truncated: false,
    oversized: false,
    malformed: false,
  };
}
