import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import type { ProcessingRequest, ProcessingResponse } from '../proto/ext-proc.js';
import type { ExtprocMetrics } from './metrics.js';
import { processRequestHeaders, type RequestHeadersDeps } from './processors/request-headers.js';
import { processResponseHeaders } from './processors/response-headers.js';
import { newRequestContext, type RequestContext } from './request-context.js';

export interface StreamDeps extends RequestHeadersDeps {
  metrics: ExtprocMetrics;
  logger: Logger;
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
  call.on('end', () => void queue.finally(() => call.end()));
  call.on('error', (err) => {
    // Envoy cancels the stream when the client goes away or a timeout fires; nothing to do.
    deps.metrics.streamErrors.inc({ kind: 'stream' });
    deps.logger.debug({ err: err.message }, 'ext_proc stream error');
  });
}

async function answer(call: Call, ctx: RequestContext, msg: ProcessingRequest, deps: StreamDeps): Promise<void> {
  const started = process.hrtime.bigint();
  const response = await respond(ctx, msg, deps);
  deps.metrics.phaseDuration.observe({ phase: msg.request ?? 'unknown' }, Number(process.hrtime.bigint() - started) / 1e9);
  if (!call.writable) return;
  call.write(response);
}

async function respond(ctx: RequestContext, msg: ProcessingRequest, deps: StreamDeps): Promise<ProcessingResponse> {
  switch (msg.request) {
    case 'request_headers': {
      const response = await processRequestHeaders(ctx, msg.request_headers ?? {}, deps);
      deps.metrics.decisions.inc({ service: ctx.service ?? '', version: ctx.version ?? '', reason: ctx.reason ?? 'unknown-service' });
      return response;
    }
    case 'response_headers':
      return processResponseHeaders(ctx, msg.response_headers ?? {}, deps.metrics);
    case 'request_body':
      return { request_body: { response: { status: 'CONTINUE' } } };
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
