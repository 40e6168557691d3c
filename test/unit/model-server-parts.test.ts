import { describe, expect, it } from 'vitest';
import { Admission } from '../../model/admission.js';
import { parseChatCall, DEFAULT_MAX_TOKENS } from '../../model/chat-request.js';
import { toHistory } from '../../model/engine.js';

describe('Admission', () => {
  it('hands out each resource once, queues up to the limit in order, then refuses', async () => {
    const admission = new Admission(['a'], 2);
    const first = await admission.acquire()!;
    const second = admission.acquire()!;
    const third = admission.acquire()!;
    expect(admission.acquire()).toBeUndefined();
    expect(admission.queued).toBe(2);
    admission.release(first);
    expect(await second).toBe('a');
    admission.release('a');
    expect(await third).toBe('a');
    expect(admission.busy).toBe(1);
    admission.release('a');
    expect(admission.busy).toBe(0);
  });

  it('drops a waiter whose request went away', async () => {
    const admission = new Admission(['a'], 1);
    await admission.acquire();
    const abort = new AbortController();
    const waiting = admission.acquire(abort.signal)!;
    abort.abort();
    await expect(waiting).rejects.toThrow(/went away/);
    expect(admission.queued).toBe(0);
    admission.release('a');
    expect(admission.busy).toBe(0);
  });
});

describe('chat requests for fledge model', () => {
  it('reads turns, text parts and defaults', () => {
    const parsed = parseChatCall(JSON.stringify({ messages: [{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hi ' }, { type: 'text', text: 'there' }] }] }));
    expect(parsed).toEqual({ ok: true, call: { turns: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi there' }], stream: false, includeUsage: false, maxTokens: DEFAULT_MAX_TOKENS, temperature: undefined, topP: undefined, seed: undefined } });
  });

  it('names the field of a wrong request', () => {
    expect(parseChatCall('{"messages":[{"role":"user","content":"x"}],"n":2}')).toMatchObject({ ok: false, param: 'n' });
    expect(parseChatCall('[]')).toMatchObject({ ok: false, message: 'request body must be a JSON object' });
  });

  it('renders OpenAI turns as chat history, the configured system prompt only when none is given', () => {
    expect(toHistory([{ role: 'user', content: 'q' }], 'sys')).toEqual({ history: [{ type: 'system', text: 'sys' }], prompt: 'q' });
    expect(
      toHistory(
        [
          { role: 'system', content: 'own' },
          { role: 'user', content: 'a' },
          { role: 'assistant', content: 'b' },
          { role: 'user', content: 'c' },
        ],
        'sys',
      ),
    ).toEqual({ history: [{ type: 'system', text: 'own' }, { type: 'user', text: 'a' }, { type: 'model', response: ['b'] }], prompt: 'c' });
    expect(() => toHistory([{ role: 'assistant', content: 'b' }], 'sys')).toThrow(/last message/);
  });
});
