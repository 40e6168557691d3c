import { z } from 'zod';
import { VS_ANNOTATIONS } from '../../common/virtualservice-annotations.js';
import { formatPath } from '../../common/config-error.js';
import { ROUTE_TOKEN_PATTERN, SERVED_BY_HEADER } from '../../common/route-token.js';
import { guardrailThresholdsSchema, type GuardrailThresholds } from '../guardrail/thresholds.js';
import type { ServiceRouting } from './state.js';

/**
 * Derives one service's routing state from an Istio VirtualService. Pure: an object in,
 * the state (or the reason it cannot be understood) out.
 *
 * - The weighted route is the first http route whose route[] has exactly two destinations
 *   with subsets and which does not match on x-fledge-version (those are the per-subset
 *   routes extproc steers with). A VS whose only catch-all route has one subset
 *   destination is stable-only (no canary).
 * - Which subset is the canary: fledge.dev/canary-subset, else the other one than
 *   fledge.dev/stable-subset, else the destination with the smaller weight (on a tie, the
 *   second listed). canaryWeight is the canary's share of the route's total weight, in percent.
 *   On a VirtualService the controller manages (it carries fledge.dev/route-token) only
 *   fledge.dev/canary-subset names a canary: without it nothing rolls out (a rolled-back
 *   candidate keeps its 0-weight destination but serves no one).
 * - routeToken: fledge.dev/route-token, which the per-version routes match;
 *   routesReportServedBy when those routes set x-fledge-served-by on the response.
 * - Hosts: spec.hosts (wildcards skipped); short names also under <name>.<ns>,
 *   <name>.<ns>.svc and <name>.<ns>.svc.cluster.local, and those FQDN forms also under
 *   their shorter forms within the namespace.
 */

export type ParsedVirtualService =
  | { ok: true; hosts: string[]; routing: ServiceRouting }
  | { ok: false; reason: string };

const VERSION_HEADER = 'x-fledge-version';
const subsetName = z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'a subset name is letters, digits, dot, dash or underscore');
const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const destinationSchema = z.object({
  destination: z.object({ host: z.string().optional(), subset: z.string().optional() }).loose(),
  weight: z.number().int().min(0).optional(),
}).loose();

const httpRouteSchema = z.object({
  match: z.array(z.object({ headers: z.record(z.string(), z.unknown()).optional() }).loose()).optional(),
  headers: z.object({ response: z.object({ set: z.record(z.string(), z.unknown()).optional() }).loose().optional() }).loose().optional(),
  route: z.array(destinationSchema).optional(),
}).loose();

const virtualServiceSchema = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.string().optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }).loose(),
  spec: z.object({
    hosts: z.array(z.string()).min(1, 'spec.hosts is empty'),
    http: z.array(httpRouteSchema).optional(),
  }).loose(),
}).loose();

type HttpRoute = z.infer<typeof httpRouteSchema>;
type Destination = z.infer<typeof destinationSchema>;

const rolloutHashesSchema = z.record(subsetName, z.string().min(1));

class Unusable extends Error {}

export function parseVirtualService(object: unknown): ParsedVirtualService {
  const parsed = virtualServiceSchema.safeParse(object);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: issue ? `${formatPath(issue.path) || '(root)'}: ${issue.message}` : 'not a VirtualService' };
  }
  const vs = parsed.data;
  const annotations = vs.metadata.annotations ?? {};
  const namespace = vs.metadata.namespace ?? 'default';
  try {
    const split = weightedSplit(vs.spec.http ?? []);
    const token = routeToken(annotations);
    const { stable, canary } = pickCanary(split, annotations, token !== undefined);
    const hosts = expandHosts(vs.spec.hosts, namespace);
    return {
      ok: true,
      hosts,
      routing: {
        service: serviceName(vs.spec.hosts, annotations),
        stable: stable.subset,
        canary: canary?.subset,
        canaryWeight: canary ? canaryPercent(canary.weight, stable.weight) : 0,
        killed: killed(annotations),
        rolloutHashes: rolloutHashes(annotations),
        ...(token ? { routeToken: token } : {}),
        ...(token && routesReportServedBy(vs.spec.http ?? []) ? { routesReportServedBy: true } : {}),
        ...guardrail(annotations, canary !== undefined),
        ...shadowPercent(annotations, canary !== undefined),
      },
    };
  } catch (err) {
    if (err instanceof Unusable) return { ok: false, reason: err.message };
    throw err;
  }
}

interface Side {
  subset: string;
  weight: number;
}

function matchesVersionHeader(route: HttpRoute): boolean {
  return (route.match ?? []).some((m) => Object.keys(m.headers ?? {}).some((h) => h.toLowerCase() === VERSION_HEADER));
}

/**
 * Whether the per-version routes name their subset in x-fledge-served-by on the response (the
 * controller's fledge-<subset> routes do); only then may extproc read a missing header as a
 * request that took the weighted route. Routes written by an older controller do not.
 */
function routesReportServedBy(http: HttpRoute[]): boolean {
  const versionRoutes = http.filter(matchesVersionHeader);
  return versionRoutes.length > 0 && versionRoutes.every((r) => {
    const subset = r.route?.length === 1 ? r.route[0]!.destination.subset : undefined;
    return subset !== undefined && r.headers?.response?.set?.[SERVED_BY_HEADER] === subset;
  });
}

function withSubset(d: Destination): boolean {
  return typeof d.destination.subset === 'string' && d.destination.subset.length > 0;
}

function weightedSplit(http: HttpRoute[]): Side[] {
  const candidates = http.filter((r) => !matchesVersionHeader(r));
  const two = candidates.find((r) => r.route?.length === 2 && r.route.every(withSubset));
  if (two) {
    const sides = two.route!.map((d) => ({ subset: checkedSubset(d.destination.subset!), weight: d.weight ?? 0 }));
    if (sides[0]!.subset === sides[1]!.subset) throw new Unusable(`the weighted route's two destinations have the same subset "${sides[0]!.subset}"`);
    if (sides[0]!.weight + sides[1]!.weight === 0) throw new Unusable('the weighted route has no weight on either destination');
    return sides;
  }
  const one = candidates.find((r) => r.route?.length === 1 && withSubset(r.route[0]!));
  if (one) return [{ subset: checkedSubset(one.route![0]!.destination.subset!), weight: 100 }];
  throw new Unusable('no http route with two subset destinations (or one, for stable only) outside the x-fledge-version routes');
}

function checkedSubset(subset: string): string {
  const r = subsetName.safeParse(subset);
  if (!r.success) throw new Unusable(`subset "${subset}": ${r.error.issues[0]?.message ?? 'invalid'}`);
  return subset;
}

function pickCanary(sides: Side[], annotations: Record<string, string>, managed: boolean): { stable: Side; canary: Side | undefined } {
  const canaryName = annotations[VS_ANNOTATIONS.canarySubset];
  const stableName = annotations[VS_ANNOTATIONS.stableSubset];
  const find = (name: string, key: string): Side => {
    const side = sides.find((s) => s.subset === name);
    if (!side) throw new Unusable(`${key} "${name}" is not a subset of the weighted route (${sides.map((s) => s.subset).join(', ')})`);
    return side;
  };
  if (sides.length === 1) {
    const only = sides[0]!;
    if (canaryName !== undefined && canaryName === only.subset) throw new Unusable(`${VS_ANNOTATIONS.canarySubset} "${canaryName}" is the only destination; no stable subset to route to`);
    if (stableName !== undefined) find(stableName, VS_ANNOTATIONS.stableSubset);
    return { stable: only, canary: undefined };
  }
  const [first, second] = sides as [Side, Side];
  const other = (s: Side): Side => (s === first ? second : first);
  if (canaryName !== undefined) {
    const canary = find(canaryName, VS_ANNOTATIONS.canarySubset);
    if (stableName !== undefined && find(stableName, VS_ANNOTATIONS.stableSubset) === canary) {
      throw new Unusable(`${VS_ANNOTATIONS.stableSubset} and ${VS_ANNOTATIONS.canarySubset} name the same subset "${canaryName}"`);
    }
    return { stable: other(canary), canary };
  }
  if (stableName !== undefined) {
    const stable = find(stableName, VS_ANNOTATIONS.stableSubset);
    return { stable, canary: managed ? undefined : other(stable) };
  }
  const canary = first.weight < second.weight ? first : second;
  return { stable: other(canary), canary: managed ? undefined : canary };
}

function canaryPercent(canary: number, stable: number): number {
  return Math.round((10_000 * canary) / (canary + stable)) / 100;
}

function routeToken(annotations: Record<string, string>): string | undefined {
  const value = annotations[VS_ANNOTATIONS.routeToken];
  if (value === undefined) return undefined;
  if (!ROUTE_TOKEN_PATTERN.test(value)) throw new Unusable(`${VS_ANNOTATIONS.routeToken} is not at least 32 lower-case hex digits (128 bits)`);
  return value;
}

function killed(annotations: Record<string, string>): boolean {
  const value = annotations[VS_ANNOTATIONS.killed];
  if (value === undefined) return false;
  const v = value.trim().toLowerCase();
  if (v === 'true') return true;
  if (v === 'false' || v === '') return false;
  throw new Unusable(`${VS_ANNOTATIONS.killed} is "${value}"; expected "true" or "false"`);
}

function rolloutHashes(annotations: Record<string, string>): Record<string, string> {
  const text = annotations[VS_ANNOTATIONS.rolloutHashes];
  if (text === undefined || text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Unusable(`${VS_ANNOTATIONS.rolloutHashes} is not valid JSON: ${(err as Error).message}`);
  }
  const r = rolloutHashesSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Unusable(`${VS_ANNOTATIONS.rolloutHashes}: expected a JSON object of subset → hash${issue ? ` (${formatPath(issue.path) || 'value'}: ${issue.message})` : ''}`);
  }
  return r.data;
}

/** The canary's guardrail limits; a malformed annotation makes the VirtualService unusable, like any other. */
function guardrail(annotations: Record<string, string>, hasCanary: boolean): { guardrail?: GuardrailThresholds } {
  const text = annotations[VS_ANNOTATIONS.guardrail];
  if (text === undefined || text.trim() === '' || !hasCanary) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Unusable(`${VS_ANNOTATIONS.guardrail} is not valid JSON: ${(err as Error).message}`);
  }
  const r = guardrailThresholdsSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Unusable(`${VS_ANNOTATIONS.guardrail}: ${issue ? `${formatPath(issue.path) || 'value'}: ${issue.message}` : 'not guardrail limits'}`);
  }
  return { guardrail: r.data };
}

/** The shadow step's share; a malformed annotation makes the VirtualService unusable, like any other. */
function shadowPercent(annotations: Record<string, string>, hasCanary: boolean): { shadowPercent?: number } {
  const text = annotations[VS_ANNOTATIONS.shadowPercent];
  if (text === undefined || text.trim() === '' || !hasCanary) return {};
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || value > 100) throw new Unusable(`${VS_ANNOTATIONS.shadowPercent} "${text}" is not a percent (0..100)`);
  return value > 0 ? { shadowPercent: value } : {};
}

function serviceName(hosts: string[], annotations: Record<string, string>): string {
  const annotated = annotations[VS_ANNOTATIONS.service];
  if (annotated !== undefined) {
    if (!dnsLabel.test(annotated)) throw new Unusable(`${VS_ANNOTATIONS.service} "${annotated}" is not a DNS label`);
    return annotated;
  }
  const label = hosts[0]!.toLowerCase().split('.')[0] ?? '';
  if (!dnsLabel.test(label)) throw new Unusable(`cannot derive a service name from host "${hosts[0]}"; set ${VS_ANNOTATIONS.service}`);
  return label;
}

/** Every name a request's :authority may carry for these hosts (lower case, no wildcards). */
export function expandHosts(hosts: string[], namespace: string): string[] {
  const out = new Set<string>();
  const ns = namespace.toLowerCase();
  for (const raw of hosts) {
    const host = raw.trim().toLowerCase();
    if (host === '' || host.includes('*')) continue;
    out.add(host);
    const labels = host.split('.');
    const name = labels[0]!;
    const inNamespace = [`${name}.${ns}`, `${name}.${ns}.svc`, `${name}.${ns}.svc.cluster.local`];
    // A short name, or any of the in-cluster forms of a service in this namespace, stands
    // for all of them (Istio resolves short names relative to the VirtualService's namespace).
    if (labels.length === 1 || inNamespace.includes(host)) {
      out.add(name);
      for (const form of inNamespace) out.add(form);
    }
  }
  return [...out];
}
