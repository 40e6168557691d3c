import { z } from 'zod';
import { formatPath } from '../common/config-error.js';

/**
 * The part of an OpenAI chat completion request the sim reads. Unknown fields are
 * accepted and ignored, as a real server would.
 */
const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
const message = z.looseObject({
  role: z.string(),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
});

export const chatRequestSchema = z.looseObject({
  model: z.string().optional(),
  messages: z.array(message).min(1),
  stream: z.boolean().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  max_tokens: z.number().int().min(1).nullable().optional(),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
});

export type ChatRequest = z.output<typeof chatRequestSchema>;

export type ChatParse = { ok: true; request: ChatRequest } | { ok: false; message: string; param: string | null };

/** Parses a request body; on failure says which field is wrong and why. */
export function parseChatRequest(body: string): ChatParse {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (err) {
    return { ok: false, message: `request body is not valid JSON: ${(err as Error).message}`, param: null };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, message: 'request body must be a JSON object', param: null };
  }
  const result = chatRequestSchema.safeParse(raw);
  if (result.success) return { ok: true, request: result.data };
  const issue = result.error.issues[0];
  const param = issue ? formatPath(issue.path) : '';
  return {
    ok: false,
    message: `invalid request: ${param ? `${param}: ` : ''}${issue?.message ?? 'unknown problem'}`,
    param: param || null,
  };
}

/** Prompt tokens estimated from the messages' text at about four characters a token. */
export function estimatePromptTokens(request: ChatRequest): number {
  let chars = 0;
  for (const m of request.messages) {
    if (typeof m.content === 'string') chars += m.content.length;
    else if (Array.isArray(m.content)) for (const part of m.content) chars += part.text?.length ?? 0;
  }
  return Math.ceil(chars / 4);
}

const WORDS = [
  'the', 'model', 'answers', 'with', 'simulated', 'text', 'so', 'that', 'tests', 'can',
  'count', 'tokens', 'and', 'measure', 'time', 'while', 'each', 'word', 'is', 'one',
  'token', 'of', 'filler', 'from', 'fledge', 'sim',
];

/** Deterministic filler: `tokens` words, each standing for one token. */
export function fillerWords(tokens: number): string[] {
  return Array.from({ length: tokens }, (_, i) => WORDS[i % WORDS.length] ?? 'token');
}

/** Splits words into at most `chunks` contiguous, non-empty pieces of text that join back to the whole. */
export function splitIntoChunks(words: string[], chunks: number): string[] {
  const n = Math.min(chunks, words.length);
  const pieces: string[] = [];
  for (let i = 0; i < n; i++) {
    const from = Math.floor((i * words.length) / n);
    const to = Math.floor(((i + 1) * words.length) / n);
    pieces.push((i === 0 ? '' : ' ') + words.slice(from, to).join(' '));
  }
  return pieces;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export function usage(prompt: number, completion: number, cached: number): Usage {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: Math.min(cached, prompt) },
  };
}

export type FinishReason = 'stop' | 'length';

export interface CompletionMeta {
  id: string;
  created: number;
  model: string;
  fingerprint: string;
}

/** Chat-completions logprobs for some tokens, each with the same logprob. */
export interface TopLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
}

export interface Logprobs {
  content: (TopLogprob & { top_logprobs: TopLogprob[] })[];
}

export function tokenLogprobs(tokens: string[], logprob: number): Logprobs {
  return { content: tokens.map((token) => ({ token, logprob, bytes: null, top_logprobs: [] })) };
}

export function chatCompletion(meta: CompletionMeta, content: string, finish: FinishReason, use: Usage, logprobs: Logprobs | null = null) {
  return {
    id: meta.id,
    object: 'chat.completion' as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices: [{ index: 0, message: { role: 'assistant' as const, content, refusal: null }, logprobs, finish_reason: finish }],
    usage: use,
  };
}

/** One `chat.completion.chunk`; `usage: null` rides on every chunk when the client asked for usage. */
export function chatChunk(
  meta: CompletionMeta,
  choice: { delta: Record<string, unknown>; finish_reason: FinishReason | null; logprobs?: Logprobs | null } | null,
  use: Usage | null | undefined,
) {
  return {
    id: meta.id,
    object: 'chat.completion.chunk' as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices: choice ? [{ index: 0, delta: choice.delta, logprobs: choice.logprobs ?? null, finish_reason: choice.finish_reason }] : [],
    ...(use === undefined ? {} : { usage: use }),
  };
}

/** An OpenAI-style error body: `{error: {message, type, param, code}}`. */
export function errorBody(status: number, message: string, param: string | null = null, code: string | null = null) {
  return { error: { message, type: errorType(status), param, code } };
}

function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status < 500) return 'invalid_request_error';
  return 'server_error';
}
