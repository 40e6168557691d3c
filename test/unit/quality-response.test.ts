import { describe, expect, it } from 'vitest';
import { ResponseObserver } from '../../extproc/quality/openai-response.js';
import { readChatRequest, withStreamUsage } from '../../extproc/quality/openai-request.js';

function observe(body: string | Buffer, contentType: string | undefined, max = 1 << 20) {
  const o = new ResponseObserver(contentType, max, () => 0);
  o.push(Buffer.isBuffer(body) ? body : Buffer.from(body));
  return o.finish(true);
}

const completion = JSON.stringify({
  choices: [{ index: 0, message: { role: 'assistant', content: 'hello there', refusal: null }, logprobs: { content: [{ token: 'hello', logprob: -0.5 }, { token: ' there', logprob: -1.5 }] }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 20, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 16 } },
});

describe('OpenAI JSON responses', () => {
  it('reads usage, finish reason, text and logprob confidence', () => {
    const o = observe(completion, 'application/json');
    expect(o).toMatchObject({ kind: 'json', usage: { input: 20, output: 2, cached: 16 }, finishReason: 'stop', text: 'hello there', textLength: 11, malformed: false });
    expect(o.confidence).toBeCloseTo(Math.exp(-1), 10);
    expect(o.ttftSeconds).toBeUndefined();
  });

  it('sniffs mislabelled bodies: JSON labelled SSE, SSE labelled JSON', () => {
    expect(observe(completion, 'text/event-stream').usage).toEqual({ input: 20, output: 2, cached: 16 });
    const sse = 'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\ndata: [DONE]\n\n';
    expect(observe(sse, 'application/json')).toMatchObject({ kind: 'sse', text: 'x', malformed: false });
  });

  it('marks non-JSON, truncated and non-OpenAI bodies malformed without throwing', () => {
    expect(observe('<html>oops</html>', 'text/html').malformed).toBe(true);
    expect(observe(completion.slice(0, 40), 'application/json').malformed).toBe(true);
    expect(observe('[1,2,3]', 'application/json').malformed).toBe(true);
    expect(observe('data: {not json\n\n', 'text/event-stream').malformed).toBe(true);
    expect(observe(Buffer.from([0xff, 0xfe, 0x00, 0x01]), undefined).malformed).toBe(true);
  });

  it('reads an SSE stream longer than the cap event by event, keeping text only up to the cap', () => {
    const event = (content: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;
    const o = new ResponseObserver('text/event-stream', 2048, () => 0);
    for (let i = 0; i < 100; i++) o.push(Buffer.from(event('x'.repeat(100))));
    o.push(Buffer.from(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 100 } })}\n\ndata: [DONE]\n\n`));
    const got = o.finish(true);
    expect(got.oversized).toBe(false);
    expect(got.usage).toEqual({ input: 5, output: 100, cached: 0 });
    expect(got.textLength).toBe(10_000);
    expect(got.text.length).toBe(2048);
  });

  it('skips a JSON body over the cap and keeps nothing of it', () => {
    const o = observe(completion, 'application/json', 50);
    expect(o.oversized).toBe(true);
    expect(o.usage).toBeUndefined();
    expect(o.bytes).toBe(Buffer.byteLength(completion));
  });
});

describe('OpenAI chat requests', () => {
  it('reads the last user prompt, stream flags and JSON format', () => {
    const body = {
      messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'first' }, { role: 'assistant', content: 'a' }, { role: 'user', content: [{ type: 'text', text: 'What is' }, { type: 'text', text: 'it?' }] }],
      stream: true,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } },
    };
    expect(readChatRequest(Buffer.from(JSON.stringify(body)))).toEqual({ prompt: 'What is\nit?', stream: true, includeUsage: false, wantsJson: true, schema: { type: 'object' } });
    expect(readChatRequest(Buffer.from('nope'))).toBeUndefined();
  });

  it('adds include_usage to a streaming request only', () => {
    const added = withStreamUsage(Buffer.from(JSON.stringify({ stream: true, messages: [], stream_options: { x: 1 } })));
    expect(JSON.parse(added!.toString())).toEqual({ stream: true, messages: [], stream_options: { x: 1, include_usage: true } });
    expect(withStreamUsage(Buffer.from(JSON.stringify({ stream: false })))).toBeUndefined();
    expect(withStreamUsage(Buffer.from(JSON.stringify({ stream: true, stream_options: { include_usage: true } })))).toBeUndefined();
  });
});
