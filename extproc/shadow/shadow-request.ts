/**
 * The per-request half of shadow mode, called from the request-headers processor: recognise
 * a copy extproc sent itself (pinned by a signed x-fledge-shadow), and pick the user
 * requests whose copies go to the candidate. Both are cheap; the copies themselves go out
 * from shadow-capture.ts once the body is read.
 */
import { headerText, type HttpHeaders, type ProcessingResponse } from '../../proto/ext-proc.js';
import type { Decision } from '../decision.js';
import type { ProbeVerifier } from '../probes/probe-token.js';
import { READ_REQUEST_BODY } from '../processors/sampling.js';
import type { RequestContext } from '../request-context.js';
import type { ServiceRouting } from '../routing/state.js';
import type { CopyTemplate, ShadowCapture } from './shadow-capture.js';
import { shadowTicket, type ShadowTicket } from './shadow-decision.js';

export interface ShadowDeps {
  /** Verifies x-fledge-shadow (the probe secret, shadow purpose); absent without a secret. */
  verifier: ProbeVerifier | undefined;
  /** Sends and pairs copies; absent when shadow capture is not configured (a shadow step is then counted as unavailable). */
  capture: ShadowCapture | undefined;
  noiseShare: number;
  random: () => number;
  /** A shadow share the routing state asks for while capture is not configured. */
  onUnavailable?: (ticket: ShadowTicket) => void;
}

/** The version a verified shadow copy is pinned to, or undefined (no header, bad token, a version that may not serve). */
export function shadowVersion(state: ServiceRouting | undefined, header: string | undefined, deps: ShadowDeps | undefined): string | undefined {
  if (header === undefined || !state || !deps?.verifier) return undefined;
  const verdict = deps.verifier.verify(state.service, header);
  if (!verdict.ok) return undefined;
  const mayServe = verdict.version === state.stable || (verdict.version === state.canary && !state.killed);
  return mayServe ? verdict.version : undefined;
}

/** Headers a copy must not repeat: pseudo-headers, fledge's own, and what the transport sets anew. */
const NOT_COPIED = new Set(['host', 'content-length', 'connection', 'keep-alive', 'transfer-encoding', 'te', 'upgrade', 'proxy-connection', 'expect']);

export function startShadow(ctx: RequestContext, state: ServiceRouting | undefined, decision: Decision, requestId: string | undefined, msg: HttpHeaders, response: ProcessingResponse, deps: ShadowDeps): void {
  const ticket = shadowTicket(state, decision, requestId, deps.random, deps.noiseShare);
  if (!ticket) return;
  if (!deps.capture) {
    deps.onUnavailable?.(ticket);
    return;
  }
  // A request without a body has nothing to copy; chat completions always have one.
  if (msg.end_of_stream || !deps.capture.admit(ticket)) return;
  ctx.shadow = { ticket, template: copyTemplate(msg), capture: deps.capture };
  response.mode_override = READ_REQUEST_BODY;
}

function copyTemplate(msg: HttpHeaders): CopyTemplate {
  const template: CopyTemplate = { authority: '', path: '/', method: 'POST', headers: {} };
  for (const h of msg.headers?.headers ?? []) {
    const key = h.key.toLowerCase();
    const value = headerText(h);
    if (key === ':authority') template.authority = value;
    else if (key === ':path') template.path = value;
    else if (key === ':method') template.method = value;
    else if (key === 'x-request-id') template.headers[key] = `${value}-shadow`;
    else if (!key.startsWith(':') && !key.startsWith('x-fledge-') && !NOT_COPIED.has(key)) template.headers[key] = value;
  }
  return template;
}
