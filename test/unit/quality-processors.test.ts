import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { setHeader, type HttpHeaders, type ProcessingResponse } from '../../proto/ext-proc.js';
import { processRequestBody } from '../../extproc/processors/request-body.js';
import { observeResponseBody } from '../../extproc/processors/response-body.js';
import { STREAM_RESPONSE_BODY, sampleResponseHeaders } from '../../extproc/processors/response-sampling.js';
import { READ_REQUEST_BODY, sampleRequestHeaders } from '../../extproc/processors/sampling.js';
import { qualityConfigSchema } from '../../extproc/quality/config.js';
import { GoldenSet } from '../../extproc/quality/evaluators/golden-set.js';
import { QualityMetrics } from '../../extproc/quality/metrics.js';
import type { QualityPipeline } from '../../extproc/quality/pipeline.js';
import { ProbeRates } from '../../extproc/quality/probe-rates.js';
import { inlineBodyReader } from '../../extproc/quality/request-body-reader.js';
import { readJsonAnswer } from '../../extproc/quality/read-json-answer.js';
import { featuresOfAnswer } from '../../extproc/shadow/answer-of.js';
import type { FinishedSample } from '../../extproc/quality/recorder.js';
import { sampledByRate } from '../../extproc/quality/sampling.js';
import { newRequestContext, type RequestContext } from '../../extproc/request-context.js';

function pipeline(config: unknown, golden = new GoldenSet([])): QualityPipeline & { submitted: FinishedSample[] } {
  const submitted: FinishedSample[] = [];
  return { config: qualityConfigSchema.parse(config), golden, metrics: new QualityMetrics(new Registry(), 300), probeRates: new ProbeRates(60_000), requestBodies: inlineBodyReader(golden.longestKey), log: createLogger('t', 'silent'), readJson: async (body) => readJsonAnswer(body, 1024 * 1024), describe: async (a) => featuresOfAnswer(a.observation, a.status, a.latencyMs, a.request, a.golden), submit: (s) => submitted.push(s), close: async () => {}, submitted };
}

function ctxFor(service = 'chat'): RequestContext {
  return { ...newRequestContext(), service, version: 'v1', rolloutHash: 'h1' };
}

const headers = (pairs: Record<string, string>, endOfStream = false): HttpHeaders => ({
  headers: { headers: Object.entries(pairs).map(([k, v]) => setHeader(k, v).header) },
  end_of_stream: endOfStream,
});

const routed = (): ProcessingResponse => ({ request_headers: { response: { status: 'CONTINUE', header_mutation: { set_headers: [], remove_headers: [] } } } });

const ids = Array.from({ length: 200 }, (_, i) => `id-${i}`);
const sampledId = ids.find((id) => sampledByRate(id, 0.1))!;
const unsampledId = ids.find((id) => !sampledByRate(id, 0.1))!;

describe('quality processors', () => {
  it('leaves an unsampled request on the header-only path', () => {
    const q = pipeline({});
    const ctx = ctxFor();
    const response = routed();
    sampleRequestHeaders(ctx, headers({ 'x-request-id': unsampledId, ':path': '/v1/chat/completions' }), response, q);
    expect(response.mode_override).toBeUndefined();
    expect(ctx.sample).toBeUndefined();
    const resp: ProcessingResponse = { response_headers: { response: { status: 'CONTINUE' } } };
    sampleResponseHeaders(ctx, headers({ ':status': '200' }), resp, q);
    expect(resp.mode_override).toBeUndefined();
  });

  it('asks for the request body, then streams the response body, of a sampled request', () => {
    const q = pipeline({});
    const ctx = ctxFor();
    const response = routed();
    sampleRequestHeaders(ctx, headers({ 'x-request-id': sampledId }), response, q);
    expect(response.mode_override).toEqual(READ_REQUEST_BODY);
    expect(ctx.sample).toMatchObject({ reason: 'rate', probability: 0.1 });
    ctx.responseStatus = 200;
    const resp: ProcessingResponse = { response_headers: { response: { status: 'CONTINUE' } } };
    sampleResponseHeaders(ctx, headers({ ':status': '200', 'content-type': 'application/json', 'x-quality-score': '0.9' }), resp, q);
    expect(resp.mode_override).toEqual(STREAM_RESPONSE_BODY);
    observeResponseBody(ctx, { body: Buffer.from('{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],'), end_of_stream: false }, q);
    expect(q.submitted).toHaveLength(0);
    observeResponseBody(ctx, { body: Buffer.from('"usage":{"prompt_tokens":3,"completion_tokens":1}}'), end_of_stream: true }, q);
    expect(q.submitted).toHaveLength(1);
    expect(q.submitted[0]).toMatchObject({ probability: 0.1, status: 200, observation: { text: 'hi', usage: { input: 3, output: 1, cached: 0 } } });
    expect(q.submitted[0]?.responseHeaders.get('x-quality-score')).toBe('0.9');
  });

  it('reads every body of a golden-covered service and samples the golden match with certainty', async () => {
    const golden = new GoldenSet([{ id: 'g', service: 'chat', prompt: 'Capital of France?', expect: { facts: ['Paris'] } }]);
    const q = pipeline({}, golden);
    const ctx = ctxFor();
    const response = routed();
    sampleRequestHeaders(ctx, headers({ 'x-request-id': unsampledId }), response, q);
    expect(response.mode_override).toEqual(READ_REQUEST_BODY);
    expect(ctx.sample?.reason).toBe('none');
    await processRequestBody(ctx, { body: Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: 'capital of  france?' }] })), end_of_stream: true }, q);
    expect(ctx.sample).toMatchObject({ reason: 'golden', probability: 1, golden: { id: 'g' } });

    const other = ctxFor('other');
    const r2 = routed();
    sampleRequestHeaders(other, headers({ 'x-request-id': unsampledId }), r2, q);
    expect(r2.mode_override).toBeUndefined();
  });

  it('marks a request body that did not fit as oversized, and injects usage only where allowed', async () => {
    const q = pipeline({ injectStreamUsage: true });
    const ctx = ctxFor();
    const response = routed();
    sampleRequestHeaders(ctx, headers({ 'x-request-id': sampledId }), response, q);
    expect(response.request_headers?.response.header_mutation?.remove_headers).toContain('content-length');
    const body = Buffer.from(JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'x' }] }));
    const reply = await processRequestBody(ctx, { body, end_of_stream: true }, q);
    expect(JSON.parse(reply.request_body!.response.body_mutation!.body!.toString()).stream_options).toEqual({ include_usage: true });

    const partial = ctxFor();
    sampleRequestHeaders(partial, headers({ 'x-request-id': sampledId }), routed(), q);
    const r = await processRequestBody(partial, { body, end_of_stream: false }, q);
    expect(partial.sample?.requestOversized).toBe(true);
    expect(r.request_body?.response.body_mutation).toBeUndefined();
  });
});
