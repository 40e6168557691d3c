import type { HttpBody } from '../../proto/ext-proc.js';
import type { QualityPipeline } from '../quality/pipeline.js';
import type { RequestContext } from '../request-context.js';
import { finishSample } from './response-sampling.js';

/**
 * Response body chunk of a sampled response, after it has been answered (CONTINUE):
 * feed the parser; the last chunk finishes the sample.
 */
export function observeResponseBody(ctx: RequestContext, msg: HttpBody, q: QualityPipeline | undefined): void {
  const sample = ctx.sample;
  if (!q || !sample?.observer || sample.done) return;
  if (msg.body && msg.body.length > 0) sample.observer.push(msg.body);
  if (msg.end_of_stream) finishSample(ctx, q, true);
}
