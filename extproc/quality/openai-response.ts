import { emptyObservation, type Observation } from './observation.js';
import { addLogprobs, addText, isObject, readJsonAnswer, usageOf, type JsonAnswer } from './read-json-answer.js';
import { SseReader } from './sse.js';

/** Reads a large JSON body somewhere other than the event loop; undefined when it could not. */
export type JsonAnswerReader = (body: Uint8Array) => Promise<JsonAnswer | undefined>;

export interface ResponseObserverOptions {
  /** Where JSON bodies over `inlineBytes` are read (the quality worker thread); inline when absent. */
  offThread?: JsonAnswerReader;
  inlineBytes?: number;
}

/** JSON bodies up to this size are read where they arrive (well under a millisecond). */
export const INLINE_RESPONSE_BYTES = 64 * 1024;

/**
 * Reads one OpenAI-compatible chat response as its body streams past, JSON or SSE (chosen
 * by content type, or by sniffing when the label lies). Nothing it sees can make it throw;
 * memory is bounded by `maxBytes`.
 */
export class ResponseObserver {
  private readonly obs: Observation = emptyObservation();
  private readonly jsonParts: Buffer[] = [];
  private sse: SseReader | undefined;
  private readonly logprobs = { logprobSum: 0, logprobCount: 0 };
  private finished = false;
  private sniffed = false;
  private events = 0;

  constructor(
    contentType: string | undefined,
    private readonly maxBytes: number,
    /** Seconds since the request started, for time to first token. */
    private readonly elapsedSeconds: () => number,
    private readonly options: ResponseObserverOptions = {},
  ) {
    const type = (contentType ?? '').toLowerCase();
    if (type.includes('text/event-stream')) this.useSse();
    else if (type.includes('json')) this.obs.kind = 'json';
  }

  push(chunk: Buffer): void {
    if (this.finished || chunk.length === 0) return;
    this.obs.bytes += chunk.length;
    if (!this.sniffed) this.sniff(chunk);
    if (this.obs.oversized) return;
    if (this.sse) {
      // Event by event, whatever the stream's length: only one line (≤ cap) and the text up to the cap are held.
      this.sse.push(chunk);
      if (this.sse.oversized) this.obs.oversized = true;
      return;
    }
    if (this.obs.bytes > this.maxBytes) {
      this.obs.oversized = true;
      this.jsonParts.length = 0;
      return;
    }
    this.jsonParts.push(chunk);
  }

  /** Ends the observation, every byte read here; `complete` false when the stream stopped before end_of_stream. */
  finish(complete: boolean): Observation {
    return this.end(complete, false) as Observation;
  }

  /** finish(), except that a JSON body over the inline size is read by `offThread`: the answer is a promise then. */
  finishOffThread(complete: boolean): Observation | Promise<Observation> {
    return this.end(complete, true);
  }

  private end(complete: boolean, mayHandOver: boolean): Observation | Promise<Observation> {
    if (this.finished) return this.obs;
    this.finished = true;
    this.obs.truncated = !complete;
    if (this.obs.oversized) return this.obs;
    if (this.sse) {
      this.sse.end();
      if (this.sse.oversized) this.obs.oversized = true;
      else if (this.events === 0 && this.obs.bytes > 0) this.obs.malformed = true;
      return this.withConfidence();
    }
    if (this.jsonParts.length === 0) return this.withConfidence();
    const { offThread, inlineBytes = INLINE_RESPONSE_BYTES } = this.options;
    if (!mayHandOver || !offThread || this.obs.bytes <= inlineBytes) {
      this.applyJson(readJsonAnswer(Buffer.concat(this.jsonParts).toString('utf8'), this.maxBytes));
      return this.withConfidence();
    }
    // One buffer of its own to hand over to the worker (chunks are views into gRPC's messages).
    const whole = new Uint8Array(this.obs.bytes);
    let at = 0;
    for (const part of this.jsonParts) {
      whole.set(part, at);
      at += part.length;
    }
    this.jsonParts.length = 0;
    return offThread(whole).then((answer) => {
      if (answer) this.applyJson(answer);
      else this.obs.unread = true;
      return this.withConfidence();
    });
  }

  private withConfidence(): Observation {
    const { logprobSum, logprobCount } = this.logprobs;
    if (logprobCount > 0) this.obs.confidence = Math.exp(logprobSum / logprobCount);
    return this.obs;
  }

  private applyJson(answer: JsonAnswer): void {
    this.obs.malformed = answer.malformed;
    this.obs.usage = answer.usage;
    this.obs.finishReason = answer.finishReason;
    this.obs.text = answer.text;
    this.obs.textLength = answer.textLength;
    this.obs.refusal = answer.refusal;
    this.logprobs.logprobSum = answer.logprobSum;
    this.logprobs.logprobCount = answer.logprobCount;
  }

  /** The first non-blank bytes say what the body is, whatever its label (mislabelled bodies). */
  private sniff(chunk: Buffer): void {
    const text = chunk.subarray(0, 64).toString('utf8').trimStart();
    if (text === '') return;
    this.sniffed = true;
    if (text.startsWith('data:') || text.startsWith(':') || text.startsWith('event:')) {
      if (!this.sse) this.useSse();
    } else if (text.startsWith('{') || text.startsWith('[')) {
      this.sse = undefined;
      this.obs.kind = 'json';
    } else if (this.obs.kind === 'unknown') {
      this.obs.kind = 'json'; // will fail to parse and be marked malformed
    }
  }

  private useSse(): void {
    this.obs.kind = 'sse';
    this.sse = new SseReader((data) => this.onEvent(data), this.maxBytes);
  }

  private onEvent(data: string): void {
    this.events++;
    if (data === '[DONE]') return;
    let event: unknown;
    try {
      event = JSON.parse(data);
    } catch {
      this.obs.malformed = true;
      return;
    }
    if (!isObject(event)) return;
    const usage = usageOf(event.usage);
    if (usage) this.obs.usage = usage;
    const choices = Array.isArray(event.choices) ? event.choices : [];
    for (const choice of choices) {
      if (!isObject(choice) || (choice.index !== undefined && choice.index !== 0)) continue;
      if (typeof choice.finish_reason === 'string') this.obs.finishReason = choice.finish_reason;
      const delta = isObject(choice.delta) ? choice.delta : undefined;
      const content = typeof delta?.content === 'string' ? delta.content : typeof choice.text === 'string' ? choice.text : '';
      if (content !== '') {
        if (this.obs.ttftSeconds === undefined) this.obs.ttftSeconds = this.elapsedSeconds();
        addText(this.obs, content, this.maxBytes);
      }
      if (typeof delta?.refusal === 'string' && delta.refusal !== '') this.obs.refusal = (this.obs.refusal ?? '') + delta.refusal;
      addLogprobs(this.logprobs, choice.logprobs);
    }
  }
}
