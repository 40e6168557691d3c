import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { GoldenSet } from '../../extproc/quality/evaluators/golden-set.js';
import { readRequestBody } from '../../extproc/quality/read-request-body.js';
import { OffThreadBodyReader, type BodyReadResult, type RequestBodyReader } from '../../extproc/quality/request-body-reader.js';

// The worker runs compiled JavaScript: the build's (make build), as extproc runs it.
const WORKER = pathToFileURL(resolve(import.meta.dirname, '../../dist/extproc/quality/quality-worker.js'));
const log = createLogger('test', 'silent');
const golden = new GoldenSet([{ id: 'capital', prompt: 'What is the capital of France?', expect: { facts: ['Paris'] } }]);

/** A chat request of about `bytes` bytes: filler turns before the last user message. */
function chatBody(bytes: number, prompt: string, extra: Record<string, unknown> = {}): Buffer {
  const filler = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(bytes / 27));
  return Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'system', content: filler.slice(0, bytes) }, { role: 'user', content: prompt }], ...extra }));
}

describe('request bodies: small ones read inline, large ones on a worker thread', () => {
  const readers: RequestBodyReader[] = [];
  afterEach(async () => {
    for (const r of readers.splice(0)) await r.close();
  });
  const counted: [string, BodyReadResult][] = [];
  const reader = (options: ConstructorParameters<typeof OffThreadBodyReader>[2] = {}) => {
    counted.length = 0;
    const r = new OffThreadBodyReader(golden.longestKey, log, { workerUrl: WORKER, count: (where, result) => counted.push([where, result]), ...options });
    readers.push(r);
    return r;
  };

  it('reads a large body on the worker exactly as inline: facts, golden key, usage rewrite', async () => {
    const r = reader();
    const body = chatBody(1_000_000, '  what is the CAPITAL of   France? ', { stream: true });
    const pending = r.read(body, true);
    // Handed to the worker: the caller's turn ends before the answer is there.
    expect(pending).toBeInstanceOf(Promise);
    const offThread = await pending;
    const inline = readRequestBody(body, true, golden.longestKey);
    expect(offThread.facts).toEqual(inline.facts);
    expect(offThread.facts?.stream).toBe(true);
    expect(offThread.goldenKey).toBe('what is the capital of france?');
    expect(golden.matchKey('chat', offThread.goldenKey!)?.id).toBe('capital');
    expect(offThread.usageRewrite).toBeDefined();
    expect(offThread.usageRewrite!.equals(inline.usageRewrite!)).toBe(true);
    expect(JSON.parse(offThread.usageRewrite!.toString()).stream_options).toEqual({ include_usage: true });
    // The caller's body is untouched (the worker got a copy).
    expect(JSON.parse(body.toString()).stream_options).toBeUndefined();
    expect(counted).toEqual([['worker', 'read']]);
  });

  it('reads a body up to 64 KiB on the calling thread, and never rewrites what it may not', async () => {
    const r = reader();
    const read = r.read(chatBody(1_000, 'What is the capital of France?', { stream: true }), false);
    expect(read).not.toBeInstanceOf(Promise);
    expect(await read).toMatchObject({ goldenKey: 'what is the capital of france?', usageRewrite: undefined });
    expect(counted).toEqual([['inline', 'read']]);
  });

  it('does not normalise a prompt longer than every golden prompt, nor any prompt without a golden set', async () => {
    const long = `What is the capital of France? ${'and more '.repeat(20)}`;
    const read = await reader().read(chatBody(100_000, long), false);
    // Read (the prompt is there), just not a golden candidate.
    expect(read.facts?.prompt).toBe(long);
    expect(read.goldenKey).toBeUndefined();
    expect(counted).toEqual([['worker', 'read']]);
    const noGoldenSet = readRequestBody(chatBody(100, 'What is the capital of France?'), false, 0);
    expect(noGoldenSet.facts?.prompt).toBe('What is the capital of France?');
    expect(noGoldenSet.goldenKey).toBeUndefined();
  });

  it('reads a body that is not JSON as no facts, on either side', async () => {
    const junk = Buffer.alloc(200_000, '{');
    expect(await reader().read(junk, true)).toEqual({ facts: undefined, goldenKey: undefined, usageRewrite: undefined });
    // The worker read it (and found nothing), rather than failing.
    expect(counted).toEqual([['worker', 'read']]);
    expect(readRequestBody(junk.subarray(0, 100), true, 10)).toEqual({ facts: undefined, goldenKey: undefined, usageRewrite: undefined });
  });

  it('a worker that dies reads the body as nothing, counted; the next large body gets a fresh worker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fledge-body-worker-'));
    const dying = join(dir, 'dying.mjs');
    writeFileSync(dying, 'process.exit(3);\n');
    const r = reader({ workerUrl: pathToFileURL(dying) });
    expect(await r.read(chatBody(100_000, 'x'), false)).toEqual({ facts: undefined, goldenKey: undefined, usageRewrite: undefined });
    expect(counted).toEqual([['worker', 'error']]);
    expect(await r.read(chatBody(100_000, 'x'), false)).toEqual({ facts: undefined, goldenKey: undefined, usageRewrite: undefined });
    expect(counted).toEqual([['worker', 'error'], ['worker', 'error']]);
  });

  it('a worker that never answers is given up after the timeout: the read is nothing, counted as a timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fledge-body-worker-'));
    const silent = join(dir, 'silent.mjs');
    writeFileSync(silent, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => undefined);\n");
    const r = reader({ workerUrl: pathToFileURL(silent), timeoutMs: 200 });
    const reads = await Promise.all([r.read(chatBody(100_000, 'a'), false), r.read(chatBody(100_000, 'b'), false)]);
    expect(reads).toEqual([0, 1].map(() => ({ facts: undefined, goldenKey: undefined, usageRewrite: undefined })));
    expect(counted).toEqual([['worker', 'timeout'], ['worker', 'timeout']]);
  });
});
