/**
 * Reads one whole OpenAI-compatible JSON chat (or legacy completions) response: the parts the
 * quality pipeline records. Pure, so it runs the same on extproc's event loop (small bodies)
 * and on the quality worker thread (large ones). Never throws.
 */

type Json = Record<string, unknown>;

export interface Usage {
  input: number;
  output: number;
  cached: number;
}

export interface JsonAnswer {
  /** Not JSON, not an object, or neither choices nor usage. */
  malformed: boolean;
  usage: Usage | undefined;
  finishReason: string | undefined;
  /** The answer's text up to `maxChars`, and its full length. */
  text: string;
  textLength: number;
  refusal: string | undefined;
  /** Sum and count of the token logprobs (≤ 0) it carried. */
  logprobSum: number;
  logprobCount: number;
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

export function emptyJsonAnswer(): JsonAnswer {
  return { malformed: false, usage: undefined, finishReason: undefined, text: '', textLength: 0, refusal: undefined, logprobSum: 0, logprobCount: 0 };
}

export function readJsonAnswer(body: string | Uint8Array, maxChars: number): JsonAnswer {
  const answer = emptyJsonAnswer();
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    return { ...answer, malformed: true };
  }
  if (!isObject(parsed)) return { ...answer, malformed: true };
  answer.usage = usageOf(parsed.usage);
  const choices = Array.isArray(parsed.choices) ? parsed.choices : [];
  const choice = choices[0];
  if (!isObject(choice)) return isObject(parsed.usage) ? answer : { ...answer, malformed: true };
  if (typeof choice.finish_reason === 'string') answer.finishReason = choice.finish_reason;
  const message = isObject(choice.message) ? choice.message : undefined;
  if (message) {
    if (typeof message.content === 'string') addText(answer, message.content, maxChars);
    if (typeof message.refusal === 'string' && message.refusal !== '') answer.refusal = message.refusal;
  } else if (typeof choice.text === 'string') {
    addText(answer, choice.text, maxChars); // legacy completions
  }
  addLogprobs(answer, choice.logprobs);
  return answer;
}

/** OpenAI usage, prompt caching included; undefined when it names no token counts. */
export function usageOf(usage: unknown): Usage | undefined {
  if (!isObject(usage)) return undefined;
  const input = count(usage.prompt_tokens);
  const output = count(usage.completion_tokens);
  if (input === undefined && output === undefined) return undefined;
  const details = isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details : undefined;
  const cached = count(details?.cached_tokens) ?? 0;
  return { input: input ?? 0, output: output ?? 0, cached: Math.min(cached, input ?? cached) };
}

/** Chat logprobs: {content: [{token, logprob}, …]}; legacy: {token_logprobs: [...]}. */
export function addLogprobs(into: { logprobSum: number; logprobCount: number }, logprobs: unknown): void {
  if (!isObject(logprobs)) return;
  const values: unknown[] = Array.isArray(logprobs.content)
    ? logprobs.content.map((t) => (isObject(t) ? t.logprob : undefined))
    : Array.isArray(logprobs.token_logprobs)
      ? logprobs.token_logprobs
      : [];
  for (const v of values) {
    if (typeof v === 'number' && Number.isFinite(v) && v <= 0) {
      into.logprobSum += v;
      into.logprobCount++;
    }
  }
}

/** Appends to the answer's text up to `maxChars`; the length counts all of it. */
export function addText(into: { text: string; textLength: number }, text: string, maxChars: number): void {
  into.textLength += text.length;
  if (into.text.length < maxChars) into.text += text.slice(0, maxChars - into.text.length);
}
