import { PAIRWISE_JSON_SCHEMA, pairwiseMessages, parsePairwiseVerdict, type PairwiseProblem, type PairwiseVerdict } from './pairwise-rubric.js';
import { VERDICT_JSON_SCHEMA, judgeMessages, parseJudgeVerdict, type JudgeOutputProblem, type JudgeVerdict } from './rubric.js';

export interface JudgeEndpoint {
  /** Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8001 (…/v1/chat/completions is appended). */
  url: string;
  model: string;
  apiKey: string | undefined;
  rubric: string;
  timeoutMs: number;
  /** Tokens the judge may answer with (a verdict is short). */
  maxTokens: number;
  /** How the request asks for JSON: json_object (most servers), json_schema (the verdict's schema), or not at all. */
  responseFormat: JudgeResponseFormat;
}

export const JUDGE_RESPONSE_FORMATS = ['json_object', 'json_schema', 'none'] as const;
export type JudgeResponseFormat = (typeof JUDGE_RESPONSE_FORMATS)[number];

function responseFormat(format: JudgeResponseFormat, name: string, schema: object): Record<string, unknown> {
  if (format === 'none') return {};
  if (format === 'json_object') return { response_format: { type: 'json_object' } };
  return { response_format: { type: 'json_schema', json_schema: { name, strict: true, schema } } };
}

/** The judge answered, but its answer is no verdict: counted as a judge error, not retried. */
export class JudgeOutputError extends Error {
  constructor(
    readonly problem: JudgeOutputProblem | PairwiseProblem,
    detail: string,
  ) {
    super(`judge gave no verdict (${problem}): ${detail}`);
    this.name = 'JudgeOutputError';
  }
}

/**
 * Asks the judge for a verdict. Throws JudgeOutputError when the judge's reply is not a
 * verdict, and a plain Error (with the cause) when the endpoint itself fails (worth a retry).
 */
export async function askJudge(endpoint: JudgeEndpoint, prompt: string, answer: string): Promise<JudgeVerdict> {
  const content = await chat(endpoint, judgeMessages(endpoint.rubric, prompt, answer), 'judge_verdict', VERDICT_JSON_SCHEMA);
  const parsed = parseJudgeVerdict(content);
  if (!parsed.ok) throw new JudgeOutputError(parsed.problem, parsed.detail);
  return parsed.verdict;
}

/**
 * Asks the judge which of two answers (shown as A, then B) is better, with `rubric` (the
 * pairwise one). Throws like askJudge: JudgeOutputError for a reply that is no pairwise
 * verdict, a plain Error when the endpoint fails.
 */
export async function askPairwise(endpoint: JudgeEndpoint, rubric: string, prompt: string, answerA: string, answerB: string): Promise<PairwiseVerdict> {
  const content = await chat(endpoint, pairwiseMessages(rubric, prompt, answerA, answerB), 'pairwise_verdict', PAIRWISE_JSON_SCHEMA);
  const parsed = parsePairwiseVerdict(content);
  if (!parsed.ok) throw new JudgeOutputError(parsed.problem, parsed.detail);
  return parsed.verdict;
}

/** One chat completion at temperature 0: the reply's text, or an Error naming the endpoint. */
async function chat(endpoint: JudgeEndpoint, messages: { role: string; content: string }[], schemaName: string, schema: object): Promise<string> {
  const url = `${endpoint.url.replace(/\/+$/u, '')}/v1/chat/completions`;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (endpoint.apiKey) headers.authorization = `Bearer ${endpoint.apiKey}`;
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model: endpoint.model, temperature: 0, max_tokens: endpoint.maxTokens, messages, ...responseFormat(endpoint.responseFormat, schemaName, schema) }),
    signal: AbortSignal.timeout(endpoint.timeoutMs),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`judge ${url} answered ${res.status}: ${text.slice(0, 200)}`);
  let content: unknown;
  try {
    content = (JSON.parse(text) as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message?.content;
  } catch {
    throw new Error(`judge ${url} answered non-JSON: ${text.slice(0, 200)}`);
  }
  if (typeof content !== 'string') throw new Error(`judge ${url} answered without choices[0].message.content: ${text.slice(0, 200)}`);
  return content;
}
