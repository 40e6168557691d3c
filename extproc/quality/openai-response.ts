import { emptyObservation, type Observation } from './observation.js';
import { SseReader } from './sse.js';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/**
 * Reads one OpenAI-compatible chat response as its body streams past, JSON or SSE (chosen
 * by content type, or by sniffing when the label lies). Nothing it sees can make it throw;
 * memory is bounded by `maxBytes`.
 */
export class ResponseObserver {
  private readonly obs: Observation = emptyObservation();
  private readonly jsonParts: Buffer[] = [];
  private sse: SseReader | undefined;
  private logprobSum = 0;
  private logprobCount = 0;
  private finished = false;
  private sniffed = false;
  private events = 0;

  constructor(
    contentType: string | undefined,
    private readonly maxBytes: number,
    /** Seconds since the request started, for time to first token. */
    private readonly elapsedSeconds: () => number,
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

  /** Ends the observation; `complete` false when the stream stopped before end_of_stream. */
  finish(complete: boolean): Observation {
    if (this.finished) return this.obs;
    this.finished = true;
    this.obs.truncated = !complete;
    if (this.obs.oversized) return this.obs;
    if (this.sse) {
      this.sse.end();
      if (this.sse.oversized) this.obs.oversized = true;
      else if (this.events === 0 && this.obs.bytes > 0) this.obs.malformed = true;
    } else if (this.jsonParts.length > 0) {
      this.readJson(Buffer.concat(this.jsonParts).toString('utf8'));
    }
    if (this.logprobCount > 0) this.obs.confidence = Math.exp(this.logprobSum / this.logprobCount);
    return this.obs;
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

  private readJson(text: string): void {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      this.obs.malformed = true;
      return;
    }
    if (!isObject(body)) {
      this.obs.malformed = true;
      return;
    }
    this.readUsage(body.usage);
    const choices = Array.isArray(body.choices) ? body.choices : [];
    const choice = choices[0];
    if (!isObject(choice)) {
      if (!isObject(body.usage)) this.obs.malformed = true;
      return;
    }
    if (typeof choice.finish_reason === 'string') this.obs.finishReason = choice.finish_reason;
    const message = isObject(choice.message) ? choice.message : undefined;
    if (message) {
      if (typeof message.content === 'string') this.addText(message.content);
      if (typeof message.refusal === 'string' && message.refusal !== '') this.obs.refusal = message.refusal;
    } else if (typeof choice.text === 'string') {
      this.addText(choice.text); // legacy completions
    }
    this.readLogprobs(choice.logprobs);
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
    this.readUsage(event.usage);
    const choices = Array.isArray(event.choices) ? event.choices : [];
    for (const choice of choices) {
      if (!isObject(choice) || (choice.index !== undefined && choice.index !== 0)) continue;
      if (typeof choice.finish_reason === 'string') this.obs.finishReason = choice.finish_reason;
      const delta = isObject(choice.delta) ? choice.delta : undefined;
      const content = typeof delta?.content === 'string' ? delta.content : typeof choice.text === 'string' ? choice.text : '';
      if (content !== '') {
        if (this.obs.ttftSeconds === undefined) this.obs.ttftSeconds = this.elapsedSeconds();
        this.addText(content);
      }
      if (typeof delta?.refusal === 'string' && delta.refusal !== '') this.obs.refusal = (this.obs.refusal ?? '') + delta.refusal;
      this.readLogprobs(choice.logprobs);
    }
  }

  private readUsage(usage: unknown): void {
    if (!isObject(usage)) return;
    const input = num(usage.prompt_tokens);
    const output = num(usage.completion_tokens);
    if (input === undefined && output === undefined) return;
    const details = isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details : undefined;
    const cached = num(details?.cached_tokens) ?? 0;
    this.obs.usage = { input: input ?? 0, output: output ?? 0, cached: Math.min(cached, input ?? cached) };
  }

  /** Chat logprobs: {content: [{token, logprob}, …]}; legacy: {token_logprobs: [...]}. */
  private readLogprobs(logprobs: unknown): void {
    if (!isObject(logprobs)) return;
    const values: unknown[] = Array.isArray(logprobs.content)
      ? logprobs.content.map((t) => (isObject(t) ? t.logprob : undefined))
      : Array.isArray(logprobs.token_logprobs)
        ? logprobs.token_logprobs
        : [];
    for (const v of values) {
      if (typeof v === 'number' && Number.isFinite(v) && v <= 0) {
        this.logprobSum += v;
        this.logprobCount++;
      }
    }
  }

  private addText(text: string): void {
    this.obs.textLength += text.length;
    if (this.obs.text.length < this.maxBytes) this.obs.text += text.slice(0, this.maxBytes - this.obs.text.length);
  }
}
