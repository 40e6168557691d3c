import { judgeMessages, parseJudgeScore } from './rubric.js';

export interface JudgeEndpoint {
  /** Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8001 (…/v1/chat/completions is appended). */
  url: string;
  model: string;
  apiKey: string | undefined;
  rubric: string;
  timeoutMs: number;
}

/** Asks the judge for a score; throws (with the cause) when the endpoint fails or answers nonsense. */
export async function askJudge(endpoint: JudgeEndpoint, prompt: string, answer: string): Promise<number> {
  const url = `${endpoint.url.replace(/\/+$/u, '')}/v1/chat/completions`;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (endpoint.apiKey) headers.authorization = `Bearer ${endpoint.apiKey}`;
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model: endpoint.model, temperature: 0, messages: judgeMessages(endpoint.rubric, prompt, answer), response_format: { type: 'json_object' } }),
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
  const score = typeof content === 'string' ? parseJudgeScore(content) : undefined;
  if (score === undefined) throw new Error(`judge ${url} gave no score in [0,1]: ${String(content).slice(0, 200)}`);
  return score;
}
