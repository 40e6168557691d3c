import { headerText, sharedSetHeader, type HttpHeaders, type ProcessingResponse } from '../../proto/ext-proc.js';
import type { Guardrail } from '../guardrail/guardrail.js';
import type { ExtprocMetrics } from '../metrics.js';
import type { RequestContext } from '../request-context.js';
import { SERVED_BY_HEADER } from '../../common/route-token.js';
import { REASON_HEADER, VERSION_HEADER } from './request-headers.js';

/** Response headers: check who served, report it and why, and count the request. */
export function processResponseHeaders(ctx: RequestContext, msg: HttpHeaders, metrics: ExtprocMetrics, guardrail?: Guardrail): ProcessingResponse {
  let status: string | undefined;
  let servedBy: string | undefined;
  for (const h of msg.headers?.headers ?? []) {
    if (h.key === ':status') status = headerText(h);
    else if (h.key === SERVED_BY_HEADER) servedBy = headerText(h);
  }
  ctx.responseStatus = status === undefined ? undefined : Number(status);
  if (ctx.expectsServedBy && servedBy !== ctx.version) forgetVersion(ctx, metrics);
  recordResponse(ctx, metrics);
  if (guardrail && !ctx.probe && !ctx.shadowCopy && ctx.service && ctx.version) {
    guardrail.observe('errors', { service: ctx.service, version: ctx.version, rolloutHash: ctx.rolloutHash ?? ctx.version }, failed(ctx.responseStatus));
  }
  const setHeaders = [sharedSetHeader(REASON_HEADER, ctx.reason ?? 'unknown-service')];
  if (ctx.version) setHeaders.push(sharedSetHeader(VERSION_HEADER, ctx.version));
  return { response_headers: { response: { status: 'CONTINUE', header_mutation: { set_headers: setHeaders, remove_headers: INTERNAL_RESPONSE_HEADERS } } } };
}

const INTERNAL_RESPONSE_HEADERS = [SERVED_BY_HEADER];

/**
 * The answer did not come by the chosen version's route: for a moment after a change the
 * proxy's routes lag extproc's state (a new canary's route not there yet, a retired one
 * already gone), and the weighted route served the request. Which version answered is
 * unknown, so the answer is counted under none, shadow capture drops it, and the client is
 * told no version.
 */
function forgetVersion(ctx: RequestContext, metrics: ExtprocMetrics): void {
  if (ctx.service && ctx.version) metrics.routeMisses.inc({ service: ctx.service, version: ctx.version });
  ctx.version = undefined;
  ctx.rolloutHash = undefined;
  ctx.reason = 'routes-behind';
}

function recordResponse(ctx: RequestContext, metrics: ExtprocMetrics): void {
  if (!ctx.service || !ctx.version) return;
  if (ctx.shadowCopy) {
    // Shadow copies are fledge's own traffic too: their answers are compared, never counted as users'.
    metrics.shadowCopies.inc({ service: ctx.service, version: ctx.version, rollout_hash: ctx.rolloutHash ?? ctx.version, code: ctx.responseStatus === undefined ? 'none' : `${Math.floor(ctx.responseStatus / 100)}xx` });
    return;
  }
  if (ctx.probe) {
    const labels = { service: ctx.service, version: ctx.version, rollout_hash: ctx.rolloutHash ?? ctx.version };
    // Golden probes are fledge's own traffic: never in the user request, error or latency series.
    metrics.probeRequests.inc({ ...labels, code: ctx.responseStatus === undefined ? 'none' : `${Math.floor(ctx.responseStatus / 100)}xx` });
    return;
  }
  const series = metrics.series.inferenceSeries(ctx.service, ctx.version, ctx.rolloutHash ?? ctx.version);
  series.requests.inc();
  if (failed(ctx.responseStatus)) series.errors.inc();
  series.latency.observe(Number(process.hrtime.bigint() - ctx.startedAt) / 1e9);
}

/** A 5xx (Envoy's own local replies included) or no status at all: the request failed. */
function failed(status: number | undefined): boolean {
  return status === undefined || status >= 500;
}
