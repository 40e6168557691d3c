import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { ResponseObserver } from '../../extproc/quality/openai-response.js';
import { resolveModelPath } from '../../model/model-files.js';
import { startModelServer, type ModelServerHandle } from '../../model/server.js';

const logger = createLogger('model-test', 'warn');
const QUESTION = 'What is the capital of France?';

function engine(modelPath: string, concurrency: number, queueLimit: number) {
  return { modelPath, threads: 1, concurrency, queueLimit, contextSize: 512 };
}

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/** The data: payloads of a server-sent event stream, in order. */
function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .map((event) => event.trim())
    .filter((event) => event.startsWith('data: '))
    .map((event) => event.slice('data: '.length));
}

// Answers take 0.3 s on an idle core and ~10 s on this shared, loaded machine: room for both.
describe('fledge model on the real SmolLM2-135M', { timeout: 180_000 }, () => {
  let server: ModelServerHandle;

  beforeAll(async () => {
    // One answer at a time and one waiting: the third request at once must be refused.
    server = await startModelServer({ host: '127.0.0.1', port: 0, version: 'v1', modelName: 'smollm2', engine: engine(resolveModelPath('smollm2'), 1, 1), systemPrompt: 'You are a helpful assistant. Answer in one short, factual sentence.', temperature: 0, logger });
    await server.ready;
  });
  afterAll(async () => server?.close());

  it('answers JSON with the version header and plausible usage', async () => {
    const res = await post(server.url, { messages: [{ role: 'user', content: QUESTION }] });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-model-version')).toBe('v1');
    const body = (await res.json()) as { model: string; choices: { message: { content: string }; finish_reason: string }[]; usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
    expect(body.model).toBe('v1');
    const answer = body.choices[0]!.message.content;
    expect(answer.trim().length).toBeGreaterThan(0);
    // System prompt, question and chat-template tokens: more than the question's ~8 words.
    expect(body.usage.prompt_tokens).toBeGreaterThan(15);
    expect(body.usage.prompt_tokens).toBeLessThan(120);
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(64);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    expect(['stop', 'length']).toContain(body.choices[0]!.finish_reason);
  });

  it('stops at max_tokens and says so', async () => {
    const res = await post(server.url, { max_tokens: 3, messages: [{ role: 'user', content: 'Tell me a long story about a dragon.' }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: { finish_reason: string }[]; usage: { completion_tokens: number } };
    expect(body.choices[0]!.finish_reason).toBe('length');
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(3);
  });

  it('streams SSE chunks whose text is the answer, then usage, then [DONE]', async () => {
    const res = await post(server.url, { stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: QUESTION }] });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-model-version')).toBe('v1');
    const events = sseData(await res.text());
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: { delta: { content?: string }; finish_reason: string | null }[]; usage?: { prompt_tokens: number; completion_tokens: number } | null });
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text.trim().length).toBeGreaterThan(0);
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBeGreaterThan(1);
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage!.prompt_tokens).toBeGreaterThan(15);
    expect(usageChunk.usage!.completion_tokens).toBeGreaterThan(0);
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'stop' || c.choices[0]?.finish_reason === 'length')).toBe(true);
  });

  it('is deterministic at temperature 0: the same question, the same answer', async () => {
    const ask = async () => ((await (await post(server.url, { messages: [{ role: 'user', content: QUESTION }] })).json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
    expect(await ask()).toBe(await ask());
  });

  type Logprob = { token: string; logprob: number; bytes: number[] | null; top_logprobs: { token: string; logprob: number }[] };

  it('returns OpenAI logprobs when asked, for the same answer as without; extproc reads them as confidence', async () => {
    const plain = (await (await post(server.url, { messages: [{ role: 'user', content: QUESTION }] })).json()) as { choices: { message: { content: string } }[] };
    const res = await post(server.url, { logprobs: true, top_logprobs: 3, messages: [{ role: 'user', content: QUESTION }] });
    expect(res.status).toBe(200);
    const text = await res.text();
    const body = JSON.parse(text) as { choices: { message: { content: string }; logprobs: { content: Logprob[] } }[]; usage: { completion_tokens: number } };
    const { content, logprobs } = { content: body.choices[0]!.message.content, logprobs: body.choices[0]!.logprobs.content };
    // Recording probabilities does not change what is generated.
    expect(content).toBe(plain.choices[0]!.message.content);
    expect(logprobs).toHaveLength(body.usage.completion_tokens);
    expect(logprobs.map((t) => t.token).join('').trim()).toBe(content.trim());
    for (const t of logprobs) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.top_logprobs.length).toBeGreaterThan(0);
      expect(t.top_logprobs.length).toBeLessThanOrEqual(3);
      // Temperature 0 picks the most likely token: it heads its alternatives.
      expect(t.top_logprobs[0]).toMatchObject({ token: t.token, logprob: t.logprob });
      if (t.bytes) expect(Buffer.from(t.bytes).toString('utf8')).toBe(t.token);
    }
    const mean = logprobs.reduce((a, t) => a + t.logprob, 0) / logprobs.length;
    // What extproc records as the answer's confidence (fledge_quality_confidence).
    const observed = new ResponseObserver('application/json', 1 << 20, () => 0.1);
    observed.push(Buffer.from(text));
    const confidence = observed.finish(true).confidence!;
    expect(confidence).toBeCloseTo(Math.exp(mean), 10);
    expect(confidence).toBeGreaterThan(0);
    expect(confidence).toBeLessThanOrEqual(1);
  });

  it('streams logprobs with the chunks whose text they belong to', async () => {
    const res = await post(server.url, { stream: true, logprobs: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: QUESTION }] });
    const raw = await res.text();
    const chunks = sseData(raw).slice(0, -1).map((e) => JSON.parse(e) as { choices: { delta: { content?: string }; logprobs: { content: Logprob[] } | null }[]; usage?: { completion_tokens: number } | null });
    const tokens = chunks.flatMap((c) => c.choices[0]?.logprobs?.content ?? []);
    const streamed = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(tokens).toHaveLength(chunks.at(-1)!.usage!.completion_tokens);
    expect(tokens.map((t) => t.token).join('').trim()).toBe(streamed.trim());
    // Each text chunk carries exactly its own tokens.
    for (const c of chunks.filter((ch) => ch.choices[0]?.delta.content)) expect((c.choices[0]!.logprobs?.content ?? []).map((t) => t.token).join('')).toBe(c.choices[0]!.delta.content);
    // No top_logprobs asked: none computed.
    expect(tokens.every((t) => t.top_logprobs.length === 0)).toBe(true);
    const observed = new ResponseObserver('text/event-stream', 1 << 20, () => 0.1);
    observed.push(Buffer.from(raw));
    expect(observed.finish(true).confidence).toBeCloseTo(Math.exp(tokens.reduce((a, t) => a + t.logprob, 0) / tokens.length), 10);
  });

  it('answers JSON fitting the schema when response_format asks for it', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, country: { type: 'string' } }, required: ['city', 'country'], additionalProperties: false };
    const res = await post(server.url, { response_format: { type: 'json_schema', json_schema: { name: 'place', schema } }, messages: [{ role: 'user', content: 'Name the capital of France and its country as JSON.' }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: { message: { content: string }; finish_reason: string }[] };
    expect(body.choices[0]!.finish_reason).toBe('stop');
    const answer = JSON.parse(body.choices[0]!.message.content) as Record<string, unknown>;
    expect(Object.keys(answer).sort()).toEqual(['city', 'country']);
    expect(typeof answer.city).toBe('string');
  });

  it('refuses with 429 beyond one running and one queued answer', async () => {
    const body = { max_tokens: 32, messages: [{ role: 'user', content: 'Describe the water cycle.' }] };
    const results = await Promise.all([post(server.url, body), post(server.url, body), post(server.url, body)]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 429]);
    const refused = results.find((r) => r.status === 429)!;
    expect(refused.headers.get('retry-after')).toBe('1');
    const error = (await refused.json()) as { error: { message: string; code: string } };
    expect(error.error.code).toBe('queue_full');
    expect(error.error.message).toMatch(/1 answers in progress and 1 queued/);
    for (const ok of results.filter((r) => r.status === 200)) {
      expect(((await ok.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content.length).toBeGreaterThan(0);
    }
  });

  it('answers a wrong request with 400 naming the field', async () => {
    const cases: [unknown, RegExp][] = [
      ['{not json', /not valid JSON/],
      [{ messages: [] }, /messages: at least one message/],
      [{ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] }, /last message must have role "user"/],
      [{ temperature: 5, messages: [{ role: 'user', content: 'hi' }] }, /temperature/],
      [{ max_tokens: 100_000, messages: [{ role: 'user', content: 'hi' }] }, /max_tokens/],
      [{ messages: [{ role: 'tool', content: 'hi' }] }, /messages\[0\]\.role: role must be/],
      [{ top_logprobs: 2, messages: [{ role: 'user', content: 'hi' }] }, /top_logprobs: top_logprobs needs logprobs: true/],
      [{ logprobs: true, top_logprobs: 21, messages: [{ role: 'user', content: 'hi' }] }, /top_logprobs/],
    ];
    for (const [body, message] of cases) {
      const res = await post(server.url, body);
      expect(res.status).toBe(400);
      const error = (await res.json()) as { error: { message: string; type: string } };
      expect(error.error.type).toBe('invalid_request_error');
      expect(error.error.message).toMatch(message);
    }
  });

  it('lists its version in /v1/models and is ready', async () => {
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(['v1']);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { status: string }).status).toBe('ready');
  });
});

describe('fledge model whose model cannot load', () => {
  let server: ModelServerHandle;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fledge-model-'));
    const broken = join(dir, 'broken.gguf');
    writeFileSync(broken, 'this is not a GGUF file');
    server = await startModelServer({ host: '127.0.0.1', port: 0, version: 'v9', modelName: 'broken', engine: engine(broken, 1, 0), systemPrompt: '', temperature: 0, logger });
    await expect(server.ready).rejects.toThrow(/cannot load model .*broken\.gguf/);
  });
  afterAll(async () => server?.close());

  it('stays up and says it is not ready: /healthz 200, /readyz and chat 503', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { status: string }).status).toBe('failed');
    const res = await post(server.url, { messages: [{ role: 'user', content: 'hi' }] });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/not ready: model failed to load/);
  });
});
