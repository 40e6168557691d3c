import { headerText, setHeader, type HttpHeaders, type ProcessingResponse } from '../../proto/ext-proc.js';
import type { Guardrail } from '../guardrail/guardrail.js';
import type { ExtprocMetrics } from '../metrics.js';
import type { RequestContext } from '../request-context.js';
import { REASON_HEADER, VERSION_HEADER } from './request-headers.js';

/** Response headers: report who served and why, and count the request. */
export function processResponseHeaders(ctx: RequestContext, msg: HttpHeaders, metrics: ExtprocMetrics, guardrail?: Guardrail): ProcessingResponse {
  const status = msg.headers?.headers?.find((h) => h.key === ':status');
  ctx.responseStatus = status ? Number(headerText(status)) : undefined;
  recordResponse(ctx, metrics);
  if (guardrail && !ctx.probe && !ctx.shadowCopy && ctx.service && ctx.version) {
    guardrail.observe('errors', { service: ctx.service, version: ctx.version, rolloutHash: ctx.rolloutHash ?? ctx.version }, failed(ctx.responseStatus));
  }
  const setHeaders = [setHeader(REASON_HEADER, ctx.reason ?? 'unknown-service')];
  if (ctx.version) setHeaders.push(setHeader(VERSION_HEADER, ctx.version));
  return { response_headers: { response: { status: 'CONTINUE', header_mutation: { set_headers: setHeaders } } } };
}

function recordResponse(ctx: RequestContext, metrics: ExtprocMetrics): void {
  if (!ctx.service || !ctx.version) return;
  const labels = { service: ctx.service, version: ctx.version, rollout_hash: ctx.rolloutHash ?? ctx.version };
  if (ctx.shadowCopy) {
    // Shadow copies are fledge's own traffic too: their answers are compared, never counted as users'.
    metrics.shadowCopies.inc({ ...labels, code: ctx.responseStatus === undefined ? 'none' : `${Math.floor(ctx.responseStatus / 100)}xx` });
    return;
  }
  if (ctx.probe) {
    // Golden probes are fledge's own traffic: never in the user request, error or latency series.
    metrics.probeRequests.inc({ ...labels, code: ctx.responseStatus === undefined ? 'none' : `${Math.floor(ctx.responseStatus / 100)}xx` });
    return;
  }
  metrics.requests.inc(labels);
  // inc by 0 creates the series, so an error rate with no errors is 0, not an empty result.
  metrics.errors.inc(labels, failed(ctx.responseStatus) ? 1 : 0);
  metrics.latency.observe(labels, Number(process.hrtime.bigint() - ctx.startedAt) / 1e9);
}

/** A 5xx (Envoy's own local replies included) or no status at all: the request failed. */
function failed(status: number | undefined): boolean {
  return status === undefined || status >= 500;
}
