import { normalizePrompt } from './evaluators/golden-key.js';
import { chatRequestFacts, parseJsonBody, withStreamUsage, type RequestFacts } from './openai-request.js';

/** What the request-body processor takes from a chat request body. */
export interface ReadRequestBody {
  facts: RequestFacts | undefined;
  /** The prompt as the golden set compares it; undefined when there is none, or it is longer than every golden prompt. */
  goldenKey: string | undefined;
  /** The body with stream_options.include_usage added, when that was allowed and is missing. */
  usageRewrite: Buffer | undefined;
}

export const NOTHING_READ: ReadRequestBody = Object.freeze({ facts: undefined, goldenKey: undefined, usageRewrite: undefined });

/**
 * Parses a chat request body once for everything read from it. `longestGoldenKey` (0: no
 * golden set) spares normalising a prompt that cannot be golden.
 */
export function readRequestBody(body: Uint8Array, mayRewrite: boolean, longestGoldenKey: number): ReadRequestBody {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const parsed = parseJsonBody(bytes);
  const facts = chatRequestFacts(parsed);
  const prompt = facts?.prompt;
  let goldenKey: string | undefined;
  if (prompt !== undefined && longestGoldenKey > 0) {
    const key = normalizePrompt(prompt);
    if (key.length <= longestGoldenKey) goldenKey = key;
  }
  const usageRewrite = mayRewrite && facts?.stream && !facts.includeUsage ? withStreamUsage(bytes, parsed) : undefined;
  return { facts, goldenKey, usageRewrite };
}
