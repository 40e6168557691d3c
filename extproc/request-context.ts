import type { DecisionReason } from './decision.js';
import type { SampleState } from './quality/sample-state.js';
import type { CopyTemplate, ShadowCapture } from './shadow/shadow-capture.js';
import type { ShadowTicket } from './shadow/shadow-decision.js';

/** A user request being shadowed: its ticket, what its copies repeat, and who captures them. */
export interface ShadowedRequest {
  ticket: ShadowTicket;
  template: CopyTemplate;
  capture: ShadowCapture;
}

/** What one ext_proc stream (one HTTP request) remembers between its phases. */
export interface RequestContext {
  startedAt: bigint;
  service: string | undefined;
  version: string | undefined;
  rolloutHash: string | undefined;
  reason: DecisionReason | undefined;
  responseStatus: number | undefined;
  /** extproc chose the version and the chosen version's route names itself on the answer (x-fledge-served-by). */
  expectsServedBy: boolean;
  /** A verified golden probe: routed to its version, never counted as user traffic. */
  probe: boolean;
  /** A shadow copy extproc sent itself (x-fledge-shadow verified): pinned, never counted as user traffic. */
  shadowCopy: boolean;
  /** Set when this user request's copies go to the candidate (a shadow step). */
  shadow: ShadowedRequest | undefined;
  /** Set when the response is sampled for quality signals (or its request body is read for golden matching). */
  sample: SampleState | undefined;
}

export function newRequestContext(): RequestContext {
  return {
    startedAt: process.hrtime.bigint(),
    service: undefined,
    version: undefined,
    rolloutHash: undefined,
    reason: undefined,
    responseStatus: undefined,
    expectsServedBy: false,
    probe: false,
    shadowCopy: false,
    shadow: undefined,
    sample: undefined,
  };
}

/** Host from :authority, without port; a "-shadow" suffix (Envoy's mirror) marks a mirrored copy. */
export function parseAuthority(authority: string): { host: string; shadow: boolean } {
  let host = authority.trim().toLowerCase();
  let shadow = false;
  if (host.endsWith('-shadow')) {
    shadow = true;
    host = host.slice(0, -'-shadow'.length);
  }
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end >= 0 ? host.slice(0, end + 1) : host;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) host = host.slice(0, colon);
  }
  if (host.endsWith('-shadow')) {
    shadow = true;
    host = host.slice(0, -'-shadow'.length);
  }
  return { host, shadow };
}
