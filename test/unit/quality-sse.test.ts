import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ResponseObserver } from '../../extproc/quality/openai-response.js';
import { SseReader } from '../../extproc/quality/sse.js';
// Seeded, so every failing chunking can be replayed from its seed.
import { seededRandom as seeded } from '../../sim/random.js';

const streams = join(import.meta.dirname, '../fixtures/streams');
const recorded = {
  'openai-usage.sse': readFileSync(join(streams, 'openai-usage.sse')),
  'crlf-multiline.sse': readFileSync(join(streams, 'crlf-multiline.sse')),
};

/** Splits bytes at random points (sometimes every byte, sometimes a few big pieces). */
function randomChunks(bytes: Buffer, random: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  const maxPiece = random() < 0.2 ? 1 : 1 + Math.floor(random() * 64);
  let at = 0;
  while (at < bytes.length) {
    const size = 1 + Math.floor(random() * maxPiece);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

function observe(chunks: Buffer[], contentType = 'text/event-stream') {
  const o = new ResponseObserver(contentType, 1 << 20, () => 0.25);
  for (const c of chunks) o.push(c);
  return o.finish(true);
}

describe('SSE parsing under any chunking', () => {
  const whole = { 'openai-usage.sse': observe([recorded['openai-usage.sse']]), 'crlf-multiline.sse': observe([recorded['crlf-multiline.sse']]) };

  it('reads the recorded streams whole', () => {
    const a = whole['openai-usage.sse'];
    expect(a.usage).toEqual({ input: 12, output: 9, cached: 8 });
    expect(a.finishReason).toBe('stop');
    expect(a.text).toBe('Paris is the capital — ünïcødé ✓ 😀');
    expect(a.confidence).toBeCloseTo(Math.exp(-0.2), 10);
    expect(a.ttftSeconds).toBe(0.25);
    expect(a.malformed).toBe(false);
    const b = whole['crlf-multiline.sse'];
    expect(b.text).toBe('abc');
    expect(b.finishReason).toBe('length');
    expect(b.usage).toEqual({ input: 3, output: 2, cached: 0 });
  });

  for (const [name, bytes] of Object.entries(recorded)) {
    it(`gives the same observation for 500 random chunkings of ${name}`, () => {
      for (let seed = 1; seed <= 500; seed++) {
        const got = observe(randomChunks(bytes, seeded(seed)));
        expect(got, `seed ${seed}`).toEqual(whole[name as keyof typeof whole]);
      }
    });
  }

  it('keeps what a cut stream showed', () => {
    const bytes = recorded['openai-usage.sse'];
    const cut = bytes.subarray(0, bytes.indexOf('finish_reason":"stop"'));
    const o = new ResponseObserver('text/event-stream', 1 << 20, () => 0.1);
    o.push(cut);
    const got = o.finish(false);
    expect(got.truncated).toBe(true);
    expect(got.text).toBe('Paris is the capital — ünïcødé ✓ 😀');
    expect(got.usage).toBeUndefined();
  });

  it('marks a line longer than the cap oversized and holds no more than the cap', () => {
    const events: string[] = [];
    const r = new SseReader((d) => events.push(d), 100);
    r.push(Buffer.from('data: ' + 'x'.repeat(150)));
    r.push(Buffer.from('\n\n'));
    r.end();
    expect(r.oversized).toBe(true);
    expect(events).toEqual([]);
  });
});
