import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import type { KnobsInput } from '../../sim/knobs.js';
import { startSim, type SimHandle } from '../../sim/server.js';

const logger = createLogger('sim-test', 'silent');
const sims: SimHandle[] = [];

afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

async function sim(knobs: KnobsInput = {}, version = 'v1'): Promise<SimHandle> {
  const s = await startSim({ host: '127.0.0.1', port: 0, version, knobs: { latency: { kind: 'fixed', ms: 0 }, ...knobs }, logger });
  sims.push(s);
  return s;
}

const hello = { messages: [{ role: 'user', content: 'hello, simulated world' }] };

function chat(s: SimHandle, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

function admin(s: SimHandle, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${s.url}${path}`, { method, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
}

interface SseEvent {
  data: string;
  atMs: number;
}

/** Reads an SSE body event by event, noting when each event arrived. */
async function readSse(res: Response, started: number): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const lines = block.split('\n');
      expect(lines.every((l) => l.startsWith('data: '))).toBe(true);
      events.push({ data: lines.map((l) => l.slice('data: '.length)).join('\n'), atMs: performance.now() - started });
    }
  }
  expect(buffer).toBe('');
  return events;
}

describe('fledge sim: chat completions', () => {
  it('answers a JSON chat.completion with usage and the requested model', async () => {
    const s = await sim({ tokens: { completion: 12, cachedPrompt: 3 } });
    const res = await chat(s, { model: 'my-model', messages: [{ role: 'user', content: 'x'.repeat(40) }] });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-model-version')).toBe('v1');
    const body = await res.json();
    expect(body.object).toBe('chat.completion');
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.model).toBe('my-model');
    expect(body.choices).toHaveLength(1);
    expect(body.choices[0].message.role).toBe('assistant');
    expect(body.choices[0].message.content.split(' ')).toHaveLength(12);
    expect(body.choices[0].finish_reason).toBe('stop');
    expect(body.usage).toEqual({ prompt_tokens: 10, completion_tokens: 12, total_tokens: 22, prompt_tokens_details: { cached_tokens: 3 } });
  });

  it('names the model after its version when the request has none, and honours max_tokens', async () => {
    const s = await sim({ tokens: { completion: 40, prompt: 7 } }, 'v2-canary');
    const body = await (await chat(s, { ...hello, max_tokens: 5 })).json();
    expect(body.model).toBe('v2-canary');
    expect(body.usage.prompt_tokens).toBe(7);
    expect(body.usage.completion_tokens).toBe(5);
    expect(body.choices[0].finish_reason).toBe('length');
  });

  it('streams chat.completion.chunk events, a usage chunk and [DONE]', async () => {
    const s = await sim({ tokens: { completion: 10, prompt: 4 }, chunks: 4 });
    const started = performance.now();
    const res = await chat(s, { ...hello, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('x-model-version')).toBe('v1');
    const events = await readSse(res, started);

    expect(events.at(-1)?.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    // 4 content chunks, 1 finishing chunk, 1 usage chunk
    expect(chunks).toHaveLength(6);
    const content = chunks.slice(0, 4);
    expect(content[0].choices[0].delta.role).toBe('assistant');
    expect(content.every((c) => c.choices[0].finish_reason === null && c.usage === null)).toBe(true);
    const text = content.map((c) => c.choices[0].delta.content).join('');
    expect(text.split(' ')).toHaveLength(10);
    expect(chunks[4].choices[0].finish_reason).toBe('stop');
    expect(chunks[4].choices[0].delta).toEqual({});
    expect(chunks[5].choices).toEqual([]);
    expect(chunks[5].usage).toEqual({ prompt_tokens: 4, completion_tokens: 10, total_tokens: 14, prompt_tokens_details: { cached_tokens: 0 } });

    // The same answer as JSON has the same text.
    const json = await (await chat(s, hello)).json();
    expect(json.choices[0].message.content).toBe(text);
  });

  it('leaves usage out of a stream unless asked', async () => {
    const s = await sim({ chunks: 2 });
    const events = await readSse(await chat(s, { ...hello, stream: true }), performance.now());
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    expect(chunks).toHaveLength(3);
    expect(chunks.some((c) => 'usage' in c)).toBe(false);
    expect(events.at(-1)?.data).toBe('[DONE]');
  });

  it('takes at least the fixed latency', async () => {
    const s = await sim({ latency: { kind: 'fixed', ms: 50 } });
    const started = performance.now();
    await (await chat(s, hello)).json();
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
  });

  it('spreads stream chunks over the latency instead of sending them at once', async () => {
    const s = await sim({ latency: { kind: 'fixed', ms: 300 }, ttftMs: 0, chunks: 4 });
    const started = performance.now();
    const events = await readSse(await chat(s, { ...hello, stream: true }), started);
    const first = events[0]!;
    const done = events.at(-1)!;
    expect(done.atMs).toBeGreaterThanOrEqual(295);
    expect(done.atMs - first.atMs).toBeGreaterThanOrEqual(150);
  });
});

describe('fledge sim: faults', () => {
  it('fails every request with the configured status at errorRate 1', async () => {
    const s = await sim({ errorRate: 1, errorStatus: 503 });
    for (let i = 0; i < 20; i++) {
      const res = await chat(s, i % 2 ? hello : { ...hello, stream: true });
      expect(res.status).toBe(503);
      expect(res.headers.get('x-model-version')).toBe('v1');
      const body = await res.json();
      expect(body.error.type).toBe('server_error');
      expect(body.error.message).toMatch(/simulated failure/);
    }
    expect(s.stats()).toMatchObject({ requests: 20, errors: 20, byStatus: { '503': 20 } });
  });

  it('fails close to a seeded 30% of 1,000 requests, and repeats the same count after reset', async () => {
    const s = await sim({ errorRate: 0.3, seed: 42 });
    const run = async (): Promise<number> => {
      let failures = 0;
      for (let batch = 0; batch < 20; batch++) {
        const statuses = await Promise.all(
          Array.from({ length: 50 }, async () => {
            const res = await chat(s, hello);
            await res.arrayBuffer();
            return res.status;
          }),
        );
        failures += statuses.filter((st) => st === 500).length;
        expect(statuses.every((st) => st === 200 || st === 500)).toBe(true);
      }
      return failures;
    };
    const first = await run();
    expect(first).toBeGreaterThanOrEqual(250);
    expect(first).toBeLessThanOrEqual(350);
    expect(s.stats().errors).toBe(first);
    await admin(s, 'POST', '/admin/reset');
    expect(await run()).toBe(first);
  });

  it('puts quality headers on answers when asked', async () => {
    const s = await sim({ qualityHeaders: true, qualityScore: 0.8, hallucinationRate: 1 });
    let res = await chat(s, hello);
    expect(res.headers.get('x-quality-score')).toBe('0.8');
    expect(res.headers.get('x-hallucination')).toBe('true');
    s.patchKnobs({ hallucinationRate: 0 });
    res = await chat(s, { ...hello, stream: true });
    expect(res.headers.get('x-hallucination')).toBe('false');
    await res.text();
    s.patchKnobs({ qualityHeaders: false });
    res = await chat(s, hello);
    expect(res.headers.get('x-quality-score')).toBeNull();
    expect(res.headers.get('x-hallucination')).toBeNull();
  });
});

describe('fledge sim: admin', () => {
  it('changes behaviour when knobs are patched at runtime, keeping the rest', async () => {
    const s = await sim({ tokens: { completion: 5, cachedPrompt: 1 } });
    expect((await chat(s, hello)).status).toBe(200);

    const patched = await admin(s, 'PATCH', '/admin/knobs', { errorRate: 1, errorStatus: 429, tokens: { completion: 9 } });
    expect(patched.status).toBe(200);
    const knobs = await patched.json();
    expect(knobs.tokens).toEqual({ completion: 9, cachedPrompt: 1 });
    expect(knobs.latency).toEqual({ kind: 'fixed', ms: 0 });
    const failed = await chat(s, hello);
    expect(failed.status).toBe(429);
    expect((await failed.json()).error.type).toBe('rate_limit_error');

    await admin(s, 'PATCH', '/admin/knobs', { errorRate: 0, latency: { kind: 'uniform', minMs: 0, maxMs: 2 } });
    const body = await (await chat(s, hello)).json();
    expect(body.usage.completion_tokens).toBe(9);
    expect((await (await admin(s, 'GET', '/admin/knobs')).json()).latency).toEqual({ kind: 'uniform', minMs: 0, maxMs: 2 });
  });

  it('replaces knobs on PUT, filling defaults', async () => {
    const s = await sim({ errorRate: 1, tokens: { completion: 3 } });
    const res = await admin(s, 'PUT', '/admin/knobs', { chunks: 2 });
    expect(res.status).toBe(200);
    const knobs = await res.json();
    expect(knobs).toMatchObject({ errorRate: 0, errorStatus: 500, chunks: 2, tokens: { completion: 32, cachedPrompt: 0 }, latency: { kind: 'fixed', ms: 20 } });
    expect((await chat(s, hello)).status).toBe(200);
  });

  it('rejects bad knobs with 400 naming the path, and keeps the old ones', async () => {
    const s = await sim({ errorRate: 0.5 });
    const cases: [string, unknown, string][] = [
      ['PATCH', { errorRate: 2 }, 'errorRate'],
      ['PATCH', { tokens: { completion: -1 } }, 'tokens.completion'],
      ['PUT', { latency: { kind: 'uniform', minMs: 10, maxMs: 5 } }, 'latency.maxMs'],
      ['PATCH', { latency: { kind: 'gaussian', ms: 3 } }, 'latency.kind'],
      ['PATCH', { errorrate: 0.1 }, ''],
      ['PATCH', '{not json', ''],
      ['PATCH', [1, 2], ''],
    ];
    for (const [method, body, path] of cases) {
      const res = await admin(s, method, '/admin/knobs', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const err = await res.json();
      expect(err.error).toEqual(expect.any(String));
      expect(err.issues.map((i: { path: string }) => i.path)).toContain(path);
      expect(err.issues.every((i: { message: unknown }) => typeof i.message === 'string' && i.message.length > 0)).toBe(true);
    }
    expect(s.knobs().errorRate).toBe(0.5);
  });

  it('answers a bad body with a 400 OpenAI error and keeps serving', async () => {
    const s = await sim();
    let res = await chat(s, '{"messages": [');
    expect(res.status).toBe(400);
    let body = await res.json();
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.message).toMatch(/not valid JSON/);

    res = await chat(s, { model: 'm' });
    expect(res.status).toBe(400);
    body = await res.json();
    expect(body.error.param).toBe('messages');
    expect(body.error.message).toMatch(/messages/);

    res = await chat(s, { messages: [{ role: 'user', content: 'hi' }], stream: 'yes' });
    expect((await res.json()).error.param).toBe('stream');

    res = await chat(s, '[]');
    expect(res.status).toBe(400);
    await res.text();
    expect((await chat(s, hello)).status).toBe(200);
  });

  it('counts requests by status and user, and resets', async () => {
    const s = await sim();
    for (const user of ['alice', 'alice', 'bob', undefined, 'alice']) {
      await (await chat(s, hello, user ? { 'x-user-id': user } : {})).text();
    }
    await (await chat(s, 'nope', { 'x-user-id': 'bob' })).text();
    await (await admin(s, 'GET', '/v1/models')).text();
    const stats = await (await admin(s, 'GET', '/admin/stats')).json();
    expect(stats).toEqual({ version: 'v1', requests: 6, errors: 1, byStatus: { '200': 5, '400': 1 }, byUser: { alice: 3, bob: 2 } });

    const reset = await admin(s, 'POST', '/admin/reset');
    expect(reset.status).toBe(200);
    expect(s.stats()).toEqual({ version: 'v1', requests: 0, errors: 0, byStatus: {}, byUser: {} });
  });

  it('marks every response with x-model-version and lists its model', async () => {
    const s = await sim({}, 'v7');
    const responses = await Promise.all([
      admin(s, 'GET', '/v1/models'),
      admin(s, 'GET', '/healthz'),
      admin(s, 'GET', '/admin/knobs'),
      admin(s, 'GET', '/admin/stats'),
      admin(s, 'GET', '/nowhere'),
      admin(s, 'GET', '/v1/chat/completions'),
    ]);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 404, 405]);
    expect(responses.map((r) => r.headers.get('x-model-version'))).toEqual(Array(6).fill('v7'));
    const models = await responses[0]!.json();
    expect(models).toMatchObject({ object: 'list', data: [{ id: 'v7', object: 'model' }] });
    expect(models.data).toHaveLength(1);
    expect(await responses[1]!.json()).toEqual({ status: 'ok', version: 'v7' });
    await Promise.all(responses.slice(2).map((r) => r.text()));
  });

  it('closes promptly with a stream in flight and keep-alive connections open', async () => {
    const s = await startSim({ host: '127.0.0.1', port: 0, version: 'v1', knobs: { latency: { kind: 'fixed', ms: 30_000 }, ttftMs: 0 }, logger });
    await (await admin(s, 'GET', '/healthz')).text(); // leaves a keep-alive connection
    const res = await chat(s, { ...hello, stream: true });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    const started = performance.now();
    await s.close();
    expect(performance.now() - started).toBeLessThan(2000);
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });
});
