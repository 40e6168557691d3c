import { headerText, type HttpHeaders, type ProcessingMode, type ProcessingResponse } from '../../proto/ext-proc.js';
import type { Observation } from '../quality/observation.js';
import { ResponseObserver } from '../quality/openai-response.js';
import type { InferenceLabels } from '../quality/metrics.js';
import type { QualityPipeline } from '../quality/pipeline.js';
import type { RequestContext } from '../request-context.js';

/** Stream the response body to extproc, chunk by chunk, without holding it. */
export const STREAM_RESPONSE_BODY: ProcessingMode = {
  request_header_mode: 'SEND',
  response_header_mode: 'SEND',
  request_body_mode: 'NONE',
  response_body_mode: 'STREAMED',
  request_trailer_mode: 'SKIP',
  response_trailer_mode: 'SKIP',
};

/**
 * Response headers, sampling: a sampled request (by rate, rule or golden prompt) gets
 * its response body streamed here via mode_override; everyone else's never is.
 */
export function sampleResponseHeaders(ctx: RequestContext, msg: HttpHeaders, response: ProcessingResponse, q: QualityPipeline | undefined): void {
  if (!q?.config.enabled || !ctx.service || !ctx.version || ctx.shadowCopy) return;
  const labels = { service: ctx.service, version: ctx.version, rollout_hash: ctx.rolloutHash ?? ctx.version };
  q.metrics.touch(labels);
  if (!ctx.probe) creditProbeRate(q, labels);
  const sample = ctx.sample;
  if (!sample || (sample.reason === 'none' && !ctx.shadow)) return;
  if (sample.reason !== 'none') q.metrics.sampled.inc({ ...labels, reason: sample.reason });
  sample.status = ctx.responseStatus;
  for (const h of msg.headers?.headers ?? []) sample.responseHeaders.set(h.key.toLowerCase(), headerText(h));
  const started = ctx.startedAt;
  sample.observer = new ResponseObserver(sample.responseHeaders.get('content-type'), q.config.maxBodyBytes, () => Number(process.hrtime.bigint() - started) / 1e9, { offThread: q.readJson });
  if (msg.end_of_stream) {
    finishSample(ctx, q, true);
    return;
  }
  response.mode_override = STREAM_RESPONSE_BODY;
}

/**
 * Hands the sample to the recorder (once); `complete` false for a stream that was cut. A large
 * JSON body is read on the quality worker thread first, so the sample goes on when it is read.
 */
export function finishSample(ctx: RequestContext, q: QualityPipeline | undefined, complete: boolean): void {
  const sample = ctx.sample;
  if (!q || !sample?.observer || sample.done || !ctx.service || !ctx.version) return;
  sample.done = true;
  const finished = sample.observer.finishOffThread(complete);
  const latencyMs = Number(process.hrtime.bigint() - ctx.startedAt) / 1e6;
  if (finished instanceof Promise) {
    finished.then((observation) => recordSample(ctx, q, complete, observation, latencyMs)).catch((err: unknown) => q.log.warn({ err, service: ctx.service, version: ctx.version }, 'recording a sample failed'));
  } else {
    recordSample(ctx, q, complete, finished, latencyMs);
  }
}

function recordSample(ctx: RequestContext, q: QualityPipeline, complete: boolean, observation: Observation, latencyMs: number): void {
  const sample = ctx.sample!;
  if (ctx.shadow && complete) ctx.shadow.capture.recordStable(ctx.shadow.ticket, observation, sample.status, latencyMs, sample.request, sample.golden);
  // Read only for its shadow pair: not a quality sample.
  if (sample.reason === 'none') return;
  q.submit({
    service: ctx.service!,
    version: ctx.version!,
    rolloutHash: ctx.rolloutHash ?? ctx.version!,
    status: sample.status,
    request: sample.request,
    responseHeaders: sample.responseHeaders,
    observation,
    golden: sample.golden,
    probability: sample.probability,
    probe: ctx.probe,
  });
}

/**
 * A user request of a probed version is credited with the probes' current hallucination
 * rate, so the seed's hallucinations-per-request ratio reads the probes' figure (docs/quality.md).
 */
function creditProbeRate(q: QualityPipeline, labels: InferenceLabels): void {
  const rate = q.probeRates.rate(labels);
  if (rate !== undefined && rate > 0) q.metrics.hallucinations.inc(labels, rate);
}
