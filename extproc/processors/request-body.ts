import { type HttpBody, type ProcessingResponse } from '../../proto/ext-proc.js';
import type { QualityPipeline } from '../quality/pipeline.js';
import type { RequestContext } from '../request-context.js';

/**
 * Request body (only for requests whose headers asked for it): remember what the
 * evaluators need, recognise golden prompts, and optionally ask a sampled stream for usage.
 */
export async function processRequestBody(ctx: RequestContext, msg: HttpBody, q: QualityPipeline | undefined): Promise<ProcessingResponse> {
  const response: ProcessingResponse = { request_body: { response: { status: 'CONTINUE' } } };
  const sample = ctx.sample;
  if (!q || !sample || !ctx.service) return response;
  const body = msg.body ?? Buffer.alloc(0);
  if (msg.end_of_stream === false || body.length > q.config.maxBodyBytes) {
    sample.requestOversized = true; // Envoy's buffer filled up: only part of the body is here
    if (ctx.shadow) ctx.shadow.capture.drop(ctx.shadow.ticket); // a partial copy would be a different request
    return response;
  }
  // Parsed once for all three; a large body on a worker thread, while other requests are decided.
  const read = await q.requestBodies.read(body, sample.mayRewriteBody);
  sample.request = read.facts;
  sample.golden = read.goldenKey === undefined ? undefined : q.golden.matchKey(ctx.service, read.goldenKey);
  if (ctx.shadow) ctx.shadow.capture.sendCopies(ctx.shadow.ticket, ctx.shadow.template, body, sample.request, sample.golden);
  if (sample.golden && q.config.golden.inspect === 'all') {
    // Every golden request is sampled: it stands for itself only.
    sample.reason = sample.reason === 'none' ? 'golden' : sample.reason;
    sample.probability = 1;
  }
  if (read.usageRewrite) response.request_body!.response.body_mutation = { body: read.usageRewrite };
  return response;
}
