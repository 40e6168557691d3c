import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import type { ProcessingRequest, ProcessingResponse } from '../proto/ext-proc.js';
import type { ExtprocMetrics } from './metrics.js';
import { processRequestHeaders, type RequestHeadersDeps } from './processors/request-headers.js';
import { processRequestBody } from './processors/request-body.js';
import { observeResponseBody } from './processors/response-body.js';
import { processResponseHeaders } from './processors/response-headers.js';
import { finishSample, sampleResponseHeaders } from './processors/response-sampling.js';
import { sampleRequestHeaders } from './processors/sampling.js';
import type { QualityPipeline } from './quality/pipeline.js';
import { newRequestContext, type RequestContext } from './request-context.js';

export interface StreamDeps extends RequestHeadersDeps {
  metrics: ExtprocMetrics;
  logger: Logger;
  /** Response sampling and quality signals; absent when disabled. */
  quality?: QualityPipeline | undefined;
}

type Call = grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>;

/**
 * One ext_proc stream is one HTTP request. Phases arrive in order; each is answered by
 * one short processor over the request's context, read top to bottom below.
 */
export function handleProcessStream(call: Call, deps: StreamDeps): void {
  const ctx = newRequestContext();
  let queue: Promise<void> = Promise.resolve();
  call.on('data', (msg: ProcessingRequest) => {
    queue = queue.then(() => answer(call, ctx, msg, deps)).catch((err: unknown) => {
      deps.metrics.streamErrors.inc({ kind: 'processing' });
      deps.logger.warn({ err, phase: msg.request }, 'ext_proc message failed; Envoy will fall back (failure_mode_allow)');
      call.destroy(err as Error);
    });
  });
  // A stream that ends before the response body did (client cut, timeout) still records what was seen.
  // Only a sample still being observed has anything to record: the rest schedule nothing.
  const abandon = () => {
    if (ctx.sample?.observer && !ctx.sample.done) setImmediate(() => guarded(deps, 'finish-sample', () => finishSample(ctx, deps.quality, false)));
  };
  call.on('end', () => void queue.finally(() => call.end()).finally(abandon));
  call.on('error', (err) => {
    // Envoy cancels the stream when the client goes away or a timeout fires; nothing to do.
    deps.metrics.streamErrors.inc({ kind: 'stream' });
    deps.logger.debug({ err: err.message }, 'ext_proc stream error');
    abandon();
  });
}

async function answer(call: Call, ctx: RequestContext, msg: ProcessingRequest, deps: StreamDeps): Promise<void> {
  const started = process.hrtime.bigint();
  const response = await respond(ctx, msg, deps);
  deps.metrics.series.phase(msg.request ?? 'unknown').observe(Number(process.hrtime.bigint() - started) / 1e9);
  if (!call.writable) return;
  call.write(response);
  // Answered first; the chunk is parsed on a later turn, never before Envoy has its CONTINUE.
  if (msg.request === 'response_body' && ctx.sample?.observer) {
    const body = msg.response_body ?? {};
    setImmediate(() => guarded(deps, 'observe-body', () => observeResponseBody(ctx, body, deps.quality)));
  }
}

/** One message's answer (exported for the in-process hot-path benchmark). */
export async function respond(ctx: RequestContext, msg: ProcessingRequest, deps: StreamDeps): Promise<ProcessingResponse> {
  switch (msg.request) {
    case 'request_headers': {
      const response = await processRequestHeaders(ctx, msg.request_headers ?? {}, deps);
      guarded(deps, 'sample-request', () => sampleRequestHeaders(ctx, msg.request_headers ?? {}, response, deps.quality));
      deps.metrics.series.decision(ctx.service ?? '', ctx.version ?? '', ctx.reason ?? 'unknown-service').inc();
      return response;
    }
    case 'response_headers': {
      const response = processResponseHeaders(ctx, msg.response_headers ?? {}, deps.metrics, deps.guardrail);
      guarded(deps, 'sample-response', () => sampleResponseHeaders(ctx, msg.response_headers ?? {}, response, deps.quality));
      return response;
    }
    case 'request_body':
      return processRequestBody(ctx, msg.request_body ?? {}, deps.quality);
    case 'response_body':
      return { response_body: { response: { status: 'CONTINUE' } } };
    case 'request_trailers':
      return { request_trailers: {} };
    case 'response_trailers':
      return { response_trailers: {} };
    default:
      throw new Error(`unexpected ext_proc message: ${String(msg.request)}`);
  }
}

/**
 * Quality work must never cost a request its routing decision (or the process its life):
 * a failure there is counted and logged, and the request goes on as decided.
 */
function guarded(deps: StreamDeps, what: string, work: () => void): void {
  try {
    work();
  } catch (err) {
    deps.metrics.streamErrors.inc({ kind: what });
    deps.logger.warn({ err, what }, 'quality processing failed; the request is unaffected');
  }
}
