/**
 * The parts of Istio's VirtualService and DestinationRule that fledge reads or writes, and
 * pure functions over them. Everything not named here is carried through untouched, so
 * other people's fields (headers, retries, timeouts, other routes) survive our updates.
 */
import type { KubernetesObject } from '@kubernetes/client-node';

import { VS_ANNOTATIONS } from '../../../common/virtualservice-annotations.js';

export const ISTIO_GROUP = 'networking.istio.io';
export const ISTIO_VERSION = 'v1';

export interface RouteDestination {
  destination: { host: string; subset?: string; port?: unknown };
  weight?: number;
  [other: string]: unknown;
}

export interface HttpRoute {
  name?: string;
  match?: unknown[];
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
  changed = applyMirror(vs, subsets, 0) || changed;
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

/** Mirrors `percent` of the weighted route's traffic to the canary subset; 0 removes the mirror. */
export function applyMirror(vs: VirtualService, subsets: SubsetPair, percent: number): boolean {
  const route = weightedRoute(vs, subsets);
  if (percent <= 0) {
    if (route.mirror === undefined && route.mirrorPercentage === undefined) return false;
    delete route.mirror;
    delete route.mirrorPercentage;
    return true;
  }
  const canary = (route.route ?? []).find((r) => r.destination.subset === subsets.canary)!;
  const same = route.mirror?.subset === subsets.canary && route.mirror?.host === canary.destination.host && route.mirrorPercentage?.value === percent;
  if (same) return false;
  route.mirror = { host: canary.destination.host, subset: subsets.canary };
  route.mirrorPercentage = { value: percent };
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
