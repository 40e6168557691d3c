import type { HttpHeaders, ProcessingMode, ProcessingResponse } from '../../proto/ext-proc.js';
import type { QualityPipeline } from '../quality/pipeline.js';
import { newSampleState } from '../quality/sample-state.js';
import { headerMap, sampleOnHeaders, sampledHeaderNames } from '../quality/sampling.js';
import type { RequestContext } from '../request-context.js';

/** Read the request body (bounded by Envoy's buffer), nothing else changes. */
export const READ_REQUEST_BODY: ProcessingMode = {
  request_header_mode: 'SEND',
  response_header_mode: 'SEND',
  request_body_mode: 'BUFFERED_PARTIAL',
  response_body_mode: 'NONE',
  request_trailer_mode: 'SKIP',
  response_trailer_mode: 'SKIP',
};

const headerNames = new WeakMap<QualityPipeline, Set<string>>();
function namesFor(q: QualityPipeline): Set<string> {
  let names = headerNames.get(q);
  if (!names) {
    names = sampledHeaderNames(q.config);
    headerNames.set(q, names);
  }
  return names;
}

/**
 * Request headers, sampling: decide (by x-request-id hash, or an always-sample rule)
 * whether this response is sampled, and ask for the request body when the sample (or a
 * possible golden match) needs it. Unsampled requests are left on the header-only path.
 */
export function sampleRequestHeaders(ctx: RequestContext, msg: HttpHeaders, response: ProcessingResponse, q: QualityPipeline | undefined): void {
  // A shadow copy's answer is read by extproc's own client (extproc/shadow/), never sampled here.
  if (!q?.config.enabled || !ctx.service || !ctx.version || ctx.shadowCopy) return;
  if (ctx.probe) {
    // Every probe is evaluated: its request body (the golden prompt) and its answer are read.
    ctx.sample = newSampleState('probe', 1);
    if (!msg.end_of_stream) response.mode_override = READ_REQUEST_BODY;
    return;
  }
  const headers = headerMap(msg.headers?.headers, namesFor(q));
  const decision = sampleOnHeaders(q.config, { service: ctx.service, requestId: headers.get('x-request-id'), path: headers.get(':path') ?? '/', headers });
  const goldenCandidate = q.config.golden.inspect === 'all' && q.golden.covers(ctx.service);
  // A shadowed request's body and answer are read for the shadow pair, sampled or not.
  if (decision.reason === 'none' && !goldenCandidate && !ctx.shadow) return;
  ctx.sample = newSampleState(decision.reason, decision.probability);
  if (msg.end_of_stream) return;
  response.mode_override = READ_REQUEST_BODY;
  if (q.config.injectStreamUsage && decision.reason !== 'none') {
    // Envoy rejects a rewritten body whose length disagrees with content-length; without it
    // the body goes upstream chunked, so stream_options.include_usage can be added.
    const mutation = response.request_headers?.response.header_mutation;
    if (mutation) mutation.remove_headers = [...(mutation.remove_headers ?? []), 'content-length'];
    ctx.sample.mayRewriteBody = true;
  }
}
