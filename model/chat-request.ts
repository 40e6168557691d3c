import { z } from 'zod';
import { formatPath } from '../common/config-error.js';
import type { ChatTurn, JsonFormat } from './engine.js';
import { MAX_TOP_LOGPROBS } from './token-probabilities.js';

/** Answers are short by default so a small CPU model stays fast (tests, probes, demos). */
export const DEFAULT_MAX_TOKENS = 64;
export const MAX_MAX_TOKENS = 512;

const textPart = z.looseObject({ type: z.literal('text'), text: z.string() });
const message = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant'], { message: 'role must be system, developer, user or assistant' }),
  content: z.union([z.string(), z.array(textPart, { message: 'content parts must be {type: "text", text}' })]),
});

/** The part of an OpenAI chat completion request `fledge model` reads; other fields are ignored. */
const requestSchema = z
  .looseObject({
    model: z.string().optional(),
    messages: z.array(message).min(1, { message: 'at least one message is required' }),
    stream: z.boolean().optional(),
    stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
    max_tokens: z.number().int().min(1).max(MAX_MAX_TOKENS).nullable().optional(),
    max_completion_tokens: z.number().int().min(1).max(MAX_MAX_TOKENS).nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().gt(0).max(1).nullable().optional(),
    seed: z.number().int().nullable().optional(),
    n: z.literal(1, { message: 'only n = 1 is supported' }).nullable().optional(),
    logprobs: z.boolean().nullable().optional(),
    top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullable().optional(),
    response_format: z
      .discriminatedUnion('type', [
        z.looseObject({ type: z.literal('text') }),
        z.looseObject({ type: z.literal('json_object') }),
        z.looseObject({ type: z.literal('json_schema'), json_schema: z.looseObject({ schema: z.record(z.string(), z.unknown()) }) }),
      ])
      .nullable()
      .optional(),
  })
  .refine((r) => r.messages.at(-1)?.role === 'user', { message: 'the last message must have role "user"', path: ['messages'] })
  .refine((r) => r.top_logprobs == null || r.logprobs === true, { message: 'top_logprobs needs logprobs: true', path: ['top_logprobs'] });

export interface ChatCall {
  turns: ChatTurn[];
  stream: boolean;
  includeUsage: boolean;
  maxTokens: number;
  temperature: number | undefined;
  topP: number | undefined;
  seed: number | undefined;
  /** JSON asked for by response_format; answers are then constrained by a grammar. */
  json: JsonFormat | undefined;
  /** logprobs: true, with top_logprobs alternatives per token; undefined when not asked. */
  logprobs: { top: number } | undefined;
}

export type ChatCallParse = { ok: true; call: ChatCall } | { ok: false; message: string; param: string | null };

/** Parses a request body; a failure names the field and the reason (for a 400). */
export function parseChatCall(body: string): ChatCallParse {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (err) {
    return { ok: false, message: `request body is not valid JSON: ${(err as Error).message}`, param: null };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, message: 'request body must be a JSON object', param: null };
  const parsed = requestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue ? formatPath(issue.path) : '';
    return { ok: false, message: `invalid request: ${param ? `${param}: ` : ''}${issue?.message ?? 'unknown problem'}`, param: param || null };
  }
  const r = parsed.data;
  return {
    ok: true,
    call: {
      turns: r.messages.map((m) => ({
        role: m.role === 'developer' ? 'system' : m.role,
        content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
      })),
      stream: r.stream === true,
      includeUsage: r.stream_options?.include_usage === true,
      maxTokens: r.max_completion_tokens ?? r.max_tokens ?? DEFAULT_MAX_TOKENS,
      temperature: r.temperature ?? undefined,
      topP: r.top_p ?? undefined,
      seed: r.seed ?? undefined,
      json: jsonFormat(r.response_format),
      logprobs: r.logprobs === true ? { top: r.top_logprobs ?? 0 } : undefined,
    },
  };
}

function jsonFormat(format: z.output<typeof requestSchema>['response_format']): JsonFormat | undefined {
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { kind: 'json' };
  return { kind: 'schema', schema: format.json_schema.schema };
}
