import type { ServerResponse } from 'node:http';
import type { Logger } from '../common/logger.js';
import type { Knobs } from './knobs.js';
import { sampleLatencyMs, streamSchedule } from './latency.js';
import {
  chatChunk,
  chatCompletion,
  errorBody,
  estimatePromptTokens,
  fillerWords,
  tokenLogprobs,
  splitIntoChunks,
  usage,
  type ChatRequest,
  type CompletionMeta,
  type FinishReason,
} from './openai.js';
import type { Random } from './random.js';
import { sendJson, sleep } from './http.js';

/** Everything one chat completion needs; knobs are a snapshot taken when the request arrived. */
export interface ChatContext {
  request: ChatRequest;
  knobs: Knobs;
  /** This request's own generator (forked from the sim's root). */
  random: Random;
  version: string;
  id: string;
  /** Aborts when the client goes away or the sim closes. */
  signal: AbortSignal;
  /** Counts the response in the stats; called once, when the status is sent. */
  record: (status: number) => void;
  logger: Logger;
}

/** The random outcome of one request, drawn in a fixed order so seeded runs repeat. */
interface Draws {
  fail: boolean;
  hallucinated: boolean;
  latencyMs: number;
  cacheHit: boolean;
}

function draw(knobs: Knobs, random: Random): Draws {
  const fail = random() < knobs.errorRate;
  const hallucinated = random() < knobs.hallucinationRate;
  const latencyMs = sampleLatencyMs(knobs.latency, random);
  // Drawn last, so seeded runs of the earlier draws repeat as before.
  const cacheHit = random() < (knobs.tokens.cacheHitRate ?? 1);
  return { fail, hallucinated, latencyMs, cacheHit };
}

export async function handleChat(res: ServerResponse, ctx: ChatContext): Promise<void> {
  const { knobs, request, signal } = ctx;
  const started = performance.now();
  const draws = draw(knobs, ctx.random);

  if (draws.fail) {
    await sleep(draws.latencyMs, signal);
    if (signal.aborted) return;
    ctx.record(knobs.errorStatus);
    ctx.logger.debug({ id: ctx.id, status: knobs.errorStatus, latencyMs: draws.latencyMs }, 'injected failure');
    sendJson(
      res,
      knobs.errorStatus,
      errorBody(knobs.errorStatus, `simulated failure (errorRate ${knobs.errorRate})`, null, 'fledge_sim_injected_error'),
    );
    return;
  }

  const promptTokens = knobs.tokens.prompt ?? estimatePromptTokens(request);
  const limit = request.max_completion_tokens ?? request.max_tokens ?? Number.POSITIVE_INFINITY;
  const completionTokens = Math.min(knobs.tokens.completion, limit);
  const finish: FinishReason = completionTokens < knobs.tokens.completion ? 'length' : 'stop';
  const use = usage(promptTokens, completionTokens, draws.cacheHit ? knobs.tokens.cachedPrompt : 0);
  const words = answerWords(knobs, request, draws, completionTokens);
  const meta: CompletionMeta = {
    id: ctx.id,
    created: Math.floor(Date.now() / 1000),
    model: request.model ?? ctx.version,
    fingerprint: `fledge-sim-${ctx.version}`,
  };
  const headers = qualityHeaders(knobs, draws);
  const wantsLogprobs = (request as { logprobs?: unknown }).logprobs === true && knobs.confidence !== undefined;
  const logprobsFor = (text: string) => (wantsLogprobs ? tokenLogprobs(text.split(' ').filter((t) => t !== ''), Math.log(knobs.confidence!)) : null);

  if (knobs.bodyFault !== undefined) {
    await sleep(draws.latencyMs, signal);
    if (signal.aborted) return;
    ctx.record(200);
    sendFault(res, knobs, meta, words, finish, use);
  } else if (request.stream !== true) {
    await sleep(draws.latencyMs, signal);
    if (signal.aborted) return;
    ctx.record(200);
    sendJson(res, 200, chatCompletion(meta, words.join(' '), finish, use, logprobsFor(words.join(' '))), headers);
  } else {
    const includeUsage = request.stream_options?.include_usage === true;
    ctx.record(200);
    res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (body: unknown): void => {
      res.write(`data: ${JSON.stringify(body)}\n\n`);
    };
    const chunkUsage = includeUsage ? null : undefined;
    const pieces = splitIntoChunks(words, knobs.chunks);
    const schedule = streamSchedule(draws.latencyMs, knobs.ttftMs, pieces.length);
    const waitUntil = (atMs: number): Promise<void> => sleep(started + atMs - performance.now(), signal);

    for (const [i, piece] of pieces.entries()) {
      await waitUntil(schedule.chunkAtMs[i] ?? schedule.endMs);
      if (signal.aborted) return;
      send(chatChunk(meta, { delta: i === 0 ? { role: 'assistant', content: piece } : { content: piece }, finish_reason: null, logprobs: logprobsFor(piece) }, chunkUsage));
    }
    await waitUntil(schedule.endMs);
    if (signal.aborted) return;
    const finalDelta = pieces.length === 0 ? { role: 'assistant', content: '' } : {};
    send(chatChunk(meta, { delta: finalDelta, finish_reason: finish }, chunkUsage));
    if (includeUsage) send(chatChunk(meta, null, use));
    res.end('data: [DONE]\n\n');
  }
  ctx.logger.debug(
    { id: ctx.id, stream: request.stream === true, latencyMs: Math.round(performance.now() - started), ...use },
    'chat completion',
  );
}

/** A deliberately broken 200 answer (see the bodyFault knob). */
function sendFault(res: ServerResponse, knobs: Knobs, meta: CompletionMeta, words: string[], finish: FinishReason, use: ReturnType<typeof usage>): void {
  let body: string;
  let type = 'application/json';
  switch (knobs.bodyFault) {
    case 'non-json':
      body = '<html><body>upstream exploded</body></html>';
      break;
    case 'truncated-json': {
      const whole = JSON.stringify(chatCompletion(meta, words.join(' '), finish, use));
      body = whole.slice(0, Math.floor(whole.length / 2));
      break;
    }
    case 'oversized':
      body = JSON.stringify(chatCompletion(meta, 'x'.repeat(knobs.oversizedBytes ?? 2 * 1024 * 1024), finish, use));
      break;
    default: // mislabelled: an SSE stream that says it is JSON
      body = `data: ${JSON.stringify(chatChunk(meta, { delta: { role: 'assistant', content: words.join(' ') }, finish_reason: finish }, use))}\n\ndata: [DONE]\n\n`;
      type = 'application/json';
  }
  res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The answer's words: a judge's verdict, a golden answer (right or wrong), or filler. */
function answerWords(knobs: Knobs, request: ChatRequest, draws: Draws, completionTokens: number): string[] {
  if (knobs.judgeScore !== undefined) return [JSON.stringify({ score: knobs.judgeScore, hallucination: draws.hallucinated, reason: 'simulated judge' })];
  const prompt = lastUserText(request);
  const golden = prompt === undefined ? undefined : knobs.golden?.find((g) => normalize(g.prompt) === normalize(prompt));
  if (golden) return (draws.hallucinated ? golden.wrongAnswer : golden.answer).split(' ');
  return fillerWords(completionTokens);
}

function normalize(text: string): string {
  return text.trim().replace(/\s+/gu, ' ').toLowerCase();
}

function lastUserText(request: ChatRequest): string | undefined {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const m = request.messages[i];
    if (m?.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) return m.content.map((p) => p.text ?? '').join('\n');
  }
  return undefined;
}

function qualityHeaders(knobs: Knobs, draws: Draws): Record<string, string> {
  if (!knobs.qualityHeaders) return {};
  const headers: Record<string, string> = { 'x-hallucination': String(draws.hallucinated) };
  if (knobs.qualityScore !== null) headers['x-quality-score'] = String(knobs.qualityScore);
  return headers;
}
