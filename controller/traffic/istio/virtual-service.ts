/**
 * The parts of Istio's VirtualService and DestinationRule that fledge reads or writes, and
 * pure functions over them. Everything not named here is carried through untouched, so
 * other people's fields (headers, retries, timeouts, other routes) survive our updates.
 */
import type { KubernetesObject } from '@kubernetes/client-node';

import { newRouteToken, ROUTE_TOKEN_PATTERN, SERVED_BY_HEADER } from '../../../common/route-token.js';
import { VS_ANNOTATIONS } from '../../../common/virtualservice-annotations.js';
import type { GuardrailThresholds } from '../../../extproc/guardrail/thresholds.js';

export const ISTIO_GROUP = 'networking.istio.io';
export const ISTIO_VERSION = 'v1';

export interface RouteDestination {
  destination: { host: string; subset?: string; port?: unknown };
  weight?: number;
  [other: string]: unknown;
}

export interface HttpRoute {
  name?: string;
  match?: { headers?: Record<string, unknown>; [other: string]: unknown }[];
  route?: RouteDestination[];
  mirror?: { host: string; subset?: string; [other: string]: unknown };
  mirrorPercentage?: { value: number };
  [other: string]: unknown;
}

export interface VirtualService extends KubernetesObject {
  spec: { hosts?: string[]; http?: HttpRoute[]; [other: string]: unknown };
}

export interface DestinationRuleSubset {
  name: string;
  labels?: Record<string, string>;
}

export interface DestinationRule extends KubernetesObject {
  spec: { host?: string; subsets?: DestinationRuleSubset[]; [other: string]: unknown };
}

export interface SubsetPair {
  stable: string;
  canary: string;
}

/**
 * The weighted route is the http route whose destinations include both subsets; header-match
 * routes that send everything to one subset are left alone. Returns -1 when there is none.
 */
export function weightedRouteIndex(vs: VirtualService, subsets: SubsetPair): number {
  return (vs.spec.http ?? []).findIndex((http) => {
    const names = (http.route ?? []).map((r) => r.destination.subset);
    return names.includes(subsets.stable) && names.includes(subsets.canary);
  });
}

export function describeVirtualService(vs: Pick<VirtualService, 'metadata'>): string {
  return `VirtualService ${vs.metadata?.namespace ?? ''}/${vs.metadata?.name ?? ''}`;
}

/** Why the VirtualService cannot carry this rollout, or undefined when it can. */
export function weightedRouteProblem(vs: VirtualService, subsets: SubsetPair): string | undefined {
  if (weightedRouteIndex(vs, subsets) >= 0) return undefined;
  return `${describeVirtualService(vs)} has no http route with destinations for both subsets "${subsets.stable}" (stable) and "${subsets.canary}" (canary)`;
}

/**
 * Sets the canary's weight on the weighted route (stable gets the rest) in place.
 * Returns false when nothing had to change.
 */
export function applyWeight(vs: VirtualService, subsets: SubsetPair, canaryWeight: number): boolean {
  const route = weightedRoute(vs, subsets);
  let changed = false;
  for (const dest of route.route ?? []) {
    const wanted = dest.destination.subset === subsets.canary ? canaryWeight : dest.destination.subset === subsets.stable ? 100 - canaryWeight : undefined;
    if (wanted !== undefined && dest.weight !== wanted) {
      dest.weight = wanted;
      changed = true;
    }
  }
  return changed;
}

/** Which version is which on the VirtualService, for extproc's cluster mode. */
export interface RolloutHashes {
  canaryHash: string;
  /** Empty when no stable ReplicaSet is known. */
  stableHash: string;
}

/**
 * Records on the VirtualService which subset is the candidate and each subset's rollout hash
 * (common/virtualservice-annotations.ts): extproc reads them to route sticky users and to
 * label metrics with the hashes the analysis queries select. Returns false when already set.
 */
export function applyRoutingAnnotations(vs: VirtualService, subsets: SubsetPair, hashes: RolloutHashes): boolean {
  const wanted: Record<string, string> = {
    [VS_ANNOTATIONS.canarySubset]: subsets.canary,
    [VS_ANNOTATIONS.stableSubset]: subsets.stable,
    [VS_ANNOTATIONS.rolloutHashes]: JSON.stringify({ ...(hashes.stableHash ? { [subsets.stable]: hashes.stableHash } : {}), [subsets.canary]: hashes.canaryHash }),
  };
  const annotations = (vs.metadata ??= {}).annotations ?? {};
  const changed = Object.entries(wanted).some(([k, v]) => annotations[k] !== v);
  if (changed) vs.metadata.annotations = { ...annotations, ...wanted };
  return changed;
}

/**
 * The candidate becomes the stable version, as local mode records it: the weighted route
 * sends it 100% (the old stable 0%, its destination kept for the next rollout), no mirror,
 * `fledge.dev/stable-subset` names it, `fledge.dev/canary-subset` is removed (nothing is
 * rolling out) and the rollout hashes hold only the new stable's. Returns false when already so.
 */
export function applyPromotion(vs: VirtualService, subsets: SubsetPair, hashes: RolloutHashes | undefined): boolean {
  let changed = applyWeight(vs, subsets, 100);
  changed = applyShadow(vs, subsets, 0) || changed;
  const annotations = { ...((vs.metadata ??= {}).annotations ?? {}) };
  const before = JSON.stringify(annotations);
  delete annotations[VS_ANNOTATIONS.canarySubset];
  annotations[VS_ANNOTATIONS.stableSubset] = subsets.canary;
  if (hashes) annotations[VS_ANNOTATIONS.rolloutHashes] = JSON.stringify({ [subsets.canary]: hashes.canaryHash });
  if (JSON.stringify(annotations) !== before) {
    vs.metadata.annotations = annotations;
    changed = true;
  }
  return changed;
}

/**
 * Records that the candidate must not serve: the canary-subset annotation goes (extproc then
 * sees no canary on this VirtualService, since it carries a route token), the stable-subset
 * annotation stays. Returns false when already so.
 */
export function retireCanaryAnnotation(vs: VirtualService, subsets: SubsetPair): boolean {
  const annotations = (vs.metadata ??= {}).annotations ?? {};
  let changed = false;
  const next = { ...annotations };
  if (VS_ANNOTATIONS.canarySubset in next) {
    delete next[VS_ANNOTATIONS.canarySubset];
    changed = true;
  }
  if (next[VS_ANNOTATIONS.stableSubset] !== subsets.stable) {
    next[VS_ANNOTATIONS.stableSubset] = subsets.stable;
    changed = true;
  }
  if (changed) vs.metadata.annotations = next;
  return changed;
}

/** Sets (or, with undefined, removes) fledge.dev/guardrail; returns whether it changed. */
export function applyGuardrailAnnotation(vs: VirtualService, limits: GuardrailThresholds | undefined): boolean {
  const annotations = (vs.metadata ??= {}).annotations ?? {};
  const wanted = limits === undefined ? undefined : JSON.stringify(limits);
  if (annotations[VS_ANNOTATIONS.guardrail] === wanted) return false;
  const next = { ...annotations };
  if (wanted === undefined) delete next[VS_ANNOTATIONS.guardrail];
  else next[VS_ANNOTATIONS.guardrail] = wanted;
  vs.metadata.annotations = next;
  return true;
}

export const VERSION_HEADER = 'x-fledge-version';
export const ROUTE_TOKEN_HEADER = 'x-fledge-route-token';
/** The per-version routes the controller owns are named fledge-<subset>. */
export const HEADER_ROUTE_PREFIX = 'fledge-';

/**
 * Gives the VirtualService its route token (fledge.dev/route-token) the first time fledge
 * manages it; an existing well-formed token is kept (extproc replicas and in-flight
 * requests rely on it). Returns false when the token was already there.
 */
export function ensureRouteToken(vs: VirtualService, generate: () => string = newRouteToken): boolean {
  const annotations = (vs.metadata ??= {}).annotations ?? {};
  const current = annotations[VS_ANNOTATIONS.routeToken];
  if (current !== undefined && ROUTE_TOKEN_PATTERN.test(current)) return false;
  vs.metadata.annotations = { ...annotations, [VS_ANNOTATIONS.routeToken]: generate() };
  return true;
}

function matchesVersionHeader(route: HttpRoute): boolean {
  return (route.match ?? []).some((m) => Object.keys(m?.headers ?? {}).some((h) => h.toLowerCase() === VERSION_HEADER));
}

/**
 * Installs the per-version routes: `fledge-<subset>` for each subset that may serve (the
 * stable one always, the canary only while `canaryServes`), first in spec.http, each
 * matching x-fledge-version AND x-fledge-route-token and removing the token before the
 * upstream, and setting x-fledge-served-by: <subset> on the response. Every other route matching x-fledge-version (a user's, or an old layout's) is
 * replaced: only extproc, which knows the token, can pick a subset. Destinations copy the
 * weighted route's (host, port). Call ensureRouteToken first. Returns false when unchanged.
 */
export function applyHeaderRoutes(vs: VirtualService, subsets: SubsetPair, canaryServes: boolean): boolean {
  const token = vs.metadata?.annotations?.[VS_ANNOTATIONS.routeToken];
  if (token === undefined) throw new Error(`${describeVirtualService(vs)} has no ${VS_ANNOTATIONS.routeToken}; ensureRouteToken first`);
  const weighted = weightedRoute(vs, subsets);
  const destinationOf = (subset: string) => {
    const d = (weighted.route ?? []).find((r) => r.destination.subset === subset)!.destination;
    return { host: d.host, subset, ...(d.port === undefined ? {} : { port: d.port }) };
  };
  const serving = canaryServes ? [subsets.stable, subsets.canary] : [subsets.stable];
  const ours: HttpRoute[] = serving.map((subset) => ({
    name: `${HEADER_ROUTE_PREFIX}${subset}`,
    match: [{ headers: { [VERSION_HEADER]: { exact: subset }, [ROUTE_TOKEN_HEADER]: { exact: token } } }],
    route: [{ destination: destinationOf(subset) }],
    // The response names the subset this route sent it to: extproc's proof that the gateway ran this route.
    headers: { request: { remove: [ROUTE_TOKEN_HEADER] }, response: { set: { [SERVED_BY_HEADER]: subset } } },
  }));
  const before = vs.spec.http ?? [];
  const next = [...ours, ...before.filter((r) => !matchesVersionHeader(r))];
  if (JSON.stringify(next) === JSON.stringify(before)) return false;
  vs.spec.http = next;
  return true;
}

/**
 * Shadows `percent` of the stable's user requests to the canary: fledge.dev/shadow-percent,
 * which extproc reads and acts on (it sends the copies itself, so both answers are seen);
 * 0 removes it. An Istio `mirror` on the weighted route (an older fledge's, or a user's) is
 * removed too: its copies would reach the canary unseen, and twice. Returns whether it changed.
 */
export function applyShadow(vs: VirtualService, subsets: SubsetPair, percent: number): boolean {
  const route = weightedRoute(vs, subsets);
  let changed = false;
  if (route.mirror !== undefined || route.mirrorPercentage !== undefined) {
    delete route.mirror;
    delete route.mirrorPercentage;
    changed = true;
  }
  const annotations = (vs.metadata ??= {}).annotations ?? {};
  const wanted = percent > 0 ? String(percent) : undefined;
  if (annotations[VS_ANNOTATIONS.shadowPercent] === wanted) return changed;
  const next = { ...annotations };
  if (wanted === undefined) delete next[VS_ANNOTATIONS.shadowPercent];
  else next[VS_ANNOTATIONS.shadowPercent] = wanted;
  vs.metadata.annotations = next;
  return true;
}

/** The canary's weight on the weighted route (a destination without weight has 0, Istio's rule for several destinations). */
export function currentWeight(vs: VirtualService, subsets: SubsetPair): number | undefined {
  const index = weightedRouteIndex(vs, subsets);
  if (index < 0) return undefined;
  return vs.spec.http![index]!.route!.find((r) => r.destination.subset === subsets.canary)?.weight ?? 0;
}

function weightedRoute(vs: VirtualService, subsets: SubsetPair): HttpRoute {
  const index = weightedRouteIndex(vs, subsets);
  if (index < 0) throw new Error(weightedRouteProblem(vs, subsets));
  return vs.spec.http![index]!;
}

/** The DestinationRule subset whose labels all appear in the pod labels. */
export function subsetForPodLabels(dr: DestinationRule, podLabels: Record<string, string>): string[] {
  return (dr.spec.subsets ?? [])
    .filter((s) => Object.keys(s.labels ?? {}).length > 0 && Object.entries(s.labels ?? {}).every(([k, v]) => podLabels[k] === v))
    .map((s) => s.name);
}
