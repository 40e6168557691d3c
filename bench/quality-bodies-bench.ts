/**
 * Do large answers delay routing decisions? In process, through extproc's production
 * processors (extproc/stream.ts respond(), the quality pipeline and its worker thread): a
 * routing decision is asked for every millisecond, first alone, then while one sampled
 * 1 MiB JSON answer a second (a golden question asking for JSON, so it is parsed, checked
 * against the golden entry and validated) streams in as 64 KiB chunks. Reports the decisions'
 * latency (from when each was due) in both phases and their p99 delta, and what one such
 * answer would hold the event loop for if it were read and evaluated inline. Writes
 * bench/results/quality-bodies.json; BENCH_PHASE_SECONDS sets each phase's length.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { createLogger } from '../common/logger.js';
import { extprocConfigSchema } from '../extproc/config.js';
import { EVALUATORS, evaluateSample } from '../extproc/quality/evaluate-sample.js';
import { ResponseObserver } from '../extproc/quality/openai-response.js';
import { newRequestContext } from '../extproc/request-context.js';
import { startExtproc } from '../extproc/server.js';
import { observeResponseBody } from '../extproc/processors/response-body.js';
import { respond, type StreamDeps } from '../extproc/stream.js';
import type { HeaderValue, ProcessingRequest } from '../proto/ext-proc.js';

const PHASE_SECONDS = Number(process.env.BENCH_PHASE_SECONDS ?? 20);
const ANSWER_BYTES = 1 << 20;
const CHUNK_BYTES = 64 * 1024;
const BIG_HEADER = 'x-bench-big-answer';
const GOLDEN_Q = 'List the planets as JSON.';
const OUT = resolve(import.meta.dirname, '../../bench/results/quality-bodies.json');

const header = (key: string, value: string): HeaderValue => ({ key, raw_value: Buffer.from(value) });

function requestHeaders(id: number, big: boolean): ProcessingRequest {
  const headers = [header(':authority', 'bench'), header(':path', '/v1/chat/completions'), header(':method', 'POST'), header('x-user-id', `user-${id % 1000}`), header('x-request-id', `req-${id}`)];
  if (big) headers.push(header(BIG_HEADER, '1'), header('content-type', 'application/json'));
  return { request: 'request_headers', request_headers: { headers: { headers }, end_of_stream: !big } };
}

/** A JSON answer of about 1 MiB: an object naming the planets, padded with notes. */
function bigAnswerBody(): Buffer {
  const content = JSON.stringify({ planets: ['Mercury', 'Venus', 'Earth', 'Mars', 'Jupiter', 'Saturn', 'Uranus', 'Neptune'], notes: 'n'.repeat(ANSWER_BYTES - 300) });
  return Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 12, completion_tokens: 250_000 } }));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}
const round = (n: number): number => Math.round(n * 1000) / 1000;

/** One sampled request with a 1 MiB answer, message by message as Envoy sends them. */
async function bigAnswer(deps: StreamDeps, id: number, body: Buffer): Promise<void> {
  const ctx = newRequestContext();
  await respond(ctx, requestHeaders(id, true), deps);
  const request = Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: GOLDEN_Q }], response_format: { type: 'json_object' } }));
  await respond(ctx, { request: 'request_body', request_body: { body: request, end_of_stream: true } }, deps);
  await respond(ctx, { request: 'response_headers', response_headers: { headers: { headers: [header(':status', '200'), header('content-type', 'application/json')] }, end_of_stream: false } }, deps);
  for (let at = 0; at < body.length; at += CHUNK_BYTES) {
    const chunk = { body: body.subarray(at, at + CHUNK_BYTES), end_of_stream: at + CHUNK_BYTES >= body.length };
    await respond(ctx, { request: 'response_body', response_body: chunk }, deps);
    // As stream.ts does: the chunk is observed on the turn after its CONTINUE (Envoy's next chunk comes on a later one).
    await new Promise((r) => setImmediate(r));
    observeResponseBody(ctx, chunk, deps.quality);
  }
}

/** Asks for a decision every millisecond for `seconds`; each one's latency from when it was due. */
async function decisions(deps: StreamDeps, seconds: number, alongside?: (tick: number) => void): Promise<number[]> {
  const latencies: number[] = [];
  const start = performance.now();
  let id = 0;
  await new Promise<void>((done) => {
    const timer = setInterval(() => {
      const now = performance.now();
      const due = Math.floor(now - start);
      if (due >= seconds * 1000) {
        clearInterval(timer);
        done();
        return;
      }
      alongside?.(due);
      const ctx = newRequestContext();
      const asked = start + due;
      void respond(ctx, requestHeaders(id++, false), deps).then(() => {
        if (!ctx.version) throw new Error('no version decided: the benchmark is not exercising routing');
        latencies.push(performance.now() - asked);
      });
    }, 1);
  });
  return latencies.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-quality-bodies-'));
  const routingFile = join(dir, 'routing.yaml');
  writeFileSync(routingFile, toYaml({ services: { bench: { stable: 'v1', canary: 'v2', canaryWeight: 50, rolloutHashes: { v1: 'h1', v2: 'h2' } } } }));
  const goldenFile = join(dir, 'golden.yaml');
  const golden = { id: 'planets', prompt: GOLDEN_Q, expect: { facts: ['Neptune'], jsonSchema: { type: 'object', required: ['planets'] } } };
  writeFileSync(goldenFile, toYaml({ entries: [golden] }));
  const config = extprocConfigSchema.parse({
    routing: { file: routingFile },
    grpc: { port: 0 },
    admin: { port: 0 },
    quality: { sampling: { defaultRate: 0, always: [{ header: BIG_HEADER }] }, golden: { file: goldenFile } },
  });
  const extproc = await startExtproc(config, createLogger('extproc', 'warn'));
  const deps = extproc.streamDeps;
  const body = bigAnswerBody();
  try {
    await decisions(deps, 2); // warm-up
    const alone = await decisions(deps, PHASE_SECONDS);
    let sent = 0;
    let lastSecond = -1;
    const pending: Promise<void>[] = [];
    const withAnswers = await decisions(deps, PHASE_SECONDS, (due) => {
      const second = Math.floor(due / 1000);
      if (second === lastSecond) return;
      lastSecond = second;
      pending.push(bigAnswer(deps, 1_000_000 + sent++, body));
    });
    await Promise.all(pending);
    const jobs = async (job: string) => Number(new RegExp(`fledge_quality_worker_jobs_total\\{job="${job}",result="done"\\} (\\d+)`).exec(await deps.metrics.registry.metrics())?.[1] ?? 0);
    // The last answers may still be on the worker thread.
    for (let waited = 0; (await jobs('evaluate')) < sent && waited < 10_000; waited += 50) await new Promise((r) => setTimeout(r, 50));

    // The same answer read and evaluated inline, as before the worker thread: how long the event loop would be held.
    const inlineMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const observer = new ResponseObserver('application/json', config.quality.maxBodyBytes, () => 0);
      for (let at = 0; at < body.length; at += CHUNK_BYTES) observer.push(body.subarray(at, at + CHUNK_BYTES));
      const observation = observer.finish(true);
      evaluateSample({ service: 'bench', version: 'v1', rolloutHash: 'h1', status: 200, request: { prompt: GOLDEN_Q, stream: false, includeUsage: false, wantsJson: true, schema: undefined }, responseHeaders: new Map(), observation, golden }, EVALUATORS);
      inlineMs.push(performance.now() - t0);
    }
    inlineMs.sort((a, b) => a - b);

    const summary = (l: number[]) => ({ decisions: l.length, p50_ms: round(percentile(l, 0.5)), p99_ms: round(percentile(l, 0.99)), max_ms: round(l.at(-1) ?? 0) });
    const result = {
      command: 'make bench-quality-bodies',
      measured_at: new Date().toISOString(),
      load_average_1m_at_start: round(loadavg()[0] ?? 0),
      phase_seconds: PHASE_SECONDS,
      alone: summary(alone),
      with_1mib_answers: { ...summary(withAnswers), answers: sent, read_on_worker: await jobs('response-json'), evaluated_on_worker: await jobs('evaluate') },
      answer_p99_delta_ms: round(percentile(withAnswers, 0.99) - percentile(alone, 0.99)),
      inline_read_and_evaluate_ms: round(percentile(inlineMs, 0.5)),
      setup: `in process, no gRPC or Envoy: extproc's production processors (respond()) with its quality pipeline; a routing decision due every millisecond (service with v1/v2 at 50%, 1,000 users), alone and then while one sampled ${body.length}-byte JSON chat answer a second arrives in 64 KiB response_body chunks (a golden question asking for JSON: read, checked against the golden facts and schema, format-validated); latency from when each decision was due; inline_read_and_evaluate_ms: the same answer read and evaluated on the calling thread (median of 5), what the event loop was held for before the worker thread`,
    };
    writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await extproc.stop();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`quality-bodies bench failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
