import type { EvaluationContext } from '@openfeature/server-sdk';
import { headerText, sharedSetHeader, type HttpHeaders, type ProcessingResponse } from '../../proto/ext-proc.js';
import { decideVersion, type Decision } from '../decision.js';
import type { Guardrail } from '../guardrail/guardrail.js';
import type { FlagOutcome } from '../flags/version-flags.js';
import { probeVersion } from '../probes/probe-routing.js';
import { PROBE_HEADER, SHADOW_HEADER, type ProbeRejection, type ProbeVerifier } from '../probes/probe-token.js';
import { shadowVersion, startShadow, type ShadowDeps } from '../shadow/shadow-request.js';
import { hashFor, type RoutingStateSource, type ServiceRouting } from '../routing/state.js';
import { parseAuthority, type RequestContext } from '../request-context.js';

export const VERSION_HEADER = 'x-fledge-version';
export const REASON_HEADER = 'x-fledge-reason';
/** Matched by the per-version routes with the service's secret token; removed before the upstream. */
export const ROUTE_TOKEN_HEADER = 'x-fledge-route-token';
const FLEDGE_PREFIX = 'x-fledge-';

export interface RequestHeadersDeps {
  routing: RoutingStateSource;
  /** Evaluates the flags for a service with these versions; absent when no flag file is configured. */
  evaluateFlags: ((context: EvaluationContext, versions: readonly string[]) => Promise<FlagOutcome>) | undefined;
  /** Request header → evaluation-context attribute. */
  contextHeaders: ReadonlyMap<string, string>;
  random: () => number;
  /** Verifies golden-probe headers; absent when no probe secret is configured (probe headers are then ignored). */
  probes?: ProbeVerifier | undefined;
  onProbeRejected?: (why: ProbeRejection | 'not-serving') => void;
  /** The data-plane guardrail; absent when off. */
  guardrail?: Guardrail | undefined;
  /** Shadow copies: recognising them (needs the probe secret) and sending them; absent = off. */
  shadow?: ShadowDeps | undefined;
}

const NO_FLAGS: FlagOutcome = { flagVersion: undefined, killSwitch: false };

/**
 * Request headers: strip client-sent x-fledge-* headers, pick the version, and route by
 * setting x-fledge-version and the service's route token (the per-version routes match
 * both, so a client's own x-fledge-version selects nothing) and clearing the route cache.
 */
export async function processRequestHeaders(ctx: RequestContext, msg: HttpHeaders, deps: RequestHeadersDeps): Promise<ProcessingResponse> {
  const spoofed: string[] = [];
  const attributes: Record<string, string> = {};
  let authority = '';
  let probeHeader: string | undefined;
  let shadowHeader: string | undefined;
  let requestId: string | undefined;
  for (const h of msg.headers?.headers ?? []) {
    const key = h.key.toLowerCase();
    if (key === PROBE_HEADER) probeHeader = headerText(h);
    else if (key === SHADOW_HEADER) shadowHeader = headerText(h);
    else if (key === 'x-request-id') requestId = headerText(h);
    if (key.startsWith(FLEDGE_PREFIX)) spoofed.push(key);
    else if (key === ':authority' || (key === 'host' && authority === '')) authority = headerText(h);
    else {
      const attribute = deps.contextHeaders.get(key);
      if (attribute !== undefined) attributes[attribute] = headerText(h);
    }
  }

  const { host, shadow } = parseAuthority(authority);
  const state = deps.routing.lookup(host);
  // A tripped canary serves no user and no probe until the controller retires it.
  const canaryTripped = deps.guardrail?.canaryTripped(state) ?? false;
  let decision: Decision;
  // A verified golden probe, or a shadow copy extproc sent itself, is pinned to its version; anything else is a user request.
  const probe = probeVersion(canaryTripped ? withoutCanary(state!) : state, shadow, probeHeader, deps.probes, (why) => deps.onProbeRejected?.(why));
  ctx.probe = probe !== undefined;
  const copyOf = probe === undefined ? shadowVersion(state, shadowHeader, deps.shadow) : undefined;
  if (copyOf !== undefined) {
    ctx.shadowCopy = true;
    remember(ctx, state, { version: copyOf, reason: 'shadow' });
    return { request_headers: { response: routeTo(copyOf, state?.routeToken, spoofed) } };
  }
  try {
    let flags = NO_FLAGS;
    if (!ctx.probe && !canaryTripped && needsFlags(state, shadow) && deps.evaluateFlags) {
      attributes.service = state!.service; // last, as the context's service is the routed one
      flags = await deps.evaluateFlags(attributes, [state!.stable, state!.canary!]);
    }
    decision = probe !== undefined ? { version: probe, reason: 'probe' } : decideVersion({
      state,
      shadow,
      userKey: attributes.targetingKey || undefined,
      killSwitch: flags.killSwitch,
      flagVersion: flags.flagVersion,
      canaryTripped,
      random: deps.random,
    });
  } catch {
    // Fail safe: whatever broke, the stable version serves.
    decision = { version: state?.stable, reason: 'error' };
  }
  remember(ctx, state, decision);
  const response: ProcessingResponse = { request_headers: { response: routeTo(decision.version, state?.routeToken, spoofed) } };
  if (deps.shadow && !ctx.probe) startShadow(ctx, state, decision, requestId, msg, response, deps.shadow);
  return response;
}

function withoutCanary(state: ServiceRouting): ServiceRouting {
  const { canary: _canary, ...rest } = state;
  return { ...rest, canaryWeight: 0 };
}

function needsFlags(state: ServiceRouting | undefined, shadow: boolean): boolean {
  return state !== undefined && !shadow && !state.killed && state.canary !== undefined;
}

export function remember(ctx: RequestContext, state: ServiceRouting | undefined, decision: Decision): void {
  ctx.service = state?.service;
  ctx.version = decision.version;
  ctx.reason = decision.reason;
  ctx.rolloutHash = state && decision.version ? hashFor(state, decision.version) : undefined;
  ctx.expectsServedBy = decision.version !== undefined && state?.routeToken !== undefined && state.routesReportServedBy === true;
}

function routeTo(version: string | undefined, routeToken: string | undefined, spoofed: string[]) {
  const set = version === undefined ? [] : [sharedSetHeader(VERSION_HEADER, version), ...(routeToken ? [sharedSetHeader(ROUTE_TOKEN_HEADER, routeToken)] : [])];
  const setKeys = new Set(set.map((h) => h.header.key));
  // A set header overwrites every client value of it; every other client x-fledge-* goes.
  const removeHeaders = [...new Set(spoofed)].filter((k) => !setKeys.has(k));
  return {
    status: 'CONTINUE' as const,
    header_mutation: { set_headers: set, remove_headers: removeHeaders },
    // The route was chosen before extproc ran; make Envoy pick it again on our header.
    clear_route_cache: true,
  };
}
