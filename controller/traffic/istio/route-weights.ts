/**
 * Reads the canary weight a proxy's routes carry for one VirtualService out of an Envoy
 * config dump (istiod's /debug/config_dump for a proxy, or Envoy's own admin /config_dump).
 * Pure: JSON in, weights out.
 */

export interface VirtualServiceRoutes {
  namespace: string;
  name: string;
  stableSubset: string;
  canarySubset: string;
}

export interface RouteWeights {
  /** The config's version_info (istiod: the push version it was generated for). */
  version: string | undefined;
  /** Canary weight (0-100) of every weighted route generated from the VirtualService. */
  canaryWeights: number[];
}

type Json = Record<string, unknown>;

/**
 * A field by its proto name: Envoy's admin API writes snake_case, istiod's debug API the
 * proto3 JSON default, lowerCamelCase.
 */
function field(obj: Json | undefined, snake: string): unknown {
  if (!obj) return undefined;
  if (snake in obj) return obj[snake];
  return obj[snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())];
}

const ROUTES_DUMP = 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump';
// Envoy's admin /config_dump?resource=dynamic_route_configs lists these one by one.
const DYNAMIC_ROUTE_CONFIG = `${ROUTES_DUMP}.DynamicRouteConfig`;
const VERSION_HEADER = 'x-fledge-version';

/** Istio tags each route with the config it came from: /apis/<group>/<version>/namespaces/<ns>/virtual-service/<name>. */
function fromVirtualService(route: Json, vs: VirtualServiceRoutes): boolean {
  const config = ((field(field(route, 'metadata') as Json | undefined, 'filter_metadata') as Json | undefined)?.istio as Json | undefined)?.config;
  return typeof config === 'string' && config.endsWith(`/namespaces/${vs.namespace}/virtual-service/${vs.name}`);
}

/** Per-version header routes (and any route keyed on x-fledge-version) are not the weighted route. */
function matchesVersionHeader(route: Json): boolean {
  const headers = ((field(route, 'match') as Json | undefined)?.headers as Json[] | undefined) ?? [];
  return headers.some((h) => h.name === VERSION_HEADER);
}

/** Subset of an Istio outbound cluster name: outbound|<port>|<subset>|<host>. */
function subsetOf(cluster: unknown): string | undefined {
  return typeof cluster === 'string' ? cluster.split('|')[2] : undefined;
}

/** Canary share of one route action, or undefined when it does not route to the VirtualService's subsets. */
function canaryWeightOf(action: Json, vs: VirtualServiceRoutes): number | undefined {
  const weighted = (field(action, 'weighted_clusters') as Json | undefined)?.clusters as Json[] | undefined;
  if (weighted) {
    let canary = 0;
    let total = 0;
    for (const c of weighted) {
      const w = Number(c.weight ?? 0);
      total += w;
      if (subsetOf(c.name) === vs.canarySubset) canary += w;
    }
    return total > 0 ? Math.round((100 * canary) / total) : undefined;
  }
  // Istio drops zero-weight destinations: a single remaining one is a plain cluster route.
  const subset = subsetOf(action.cluster);
  if (subset === vs.canarySubset) return 100;
  if (subset === vs.stableSubset) return 0;
  return undefined;
}

/** Every RouteConfiguration in a config dump (dynamic route configs of a RoutesConfigDump). */
function routeConfigs(dump: Json): { version: string | undefined; config: Json }[] {
  const out: { version: string | undefined; config: Json }[] = [];
  for (const section of (dump.configs as Json[] | undefined) ?? []) {
    const dynamic = section['@type'] === ROUTES_DUMP ? ((field(section, 'dynamic_route_configs') as Json[] | undefined) ?? []) : section['@type'] === DYNAMIC_ROUTE_CONFIG ? [section] : [];
    for (const dyn of dynamic) {
      out.push({ version: field(dyn, 'version_info') as string | undefined, config: (field(dyn, 'route_config') as Json | undefined) ?? {} });
    }
  }
  return out;
}

/** The weights of the VirtualService's weighted routes in a config dump; empty when the proxy does not carry it. */
export function routeWeights(dump: unknown, vs: VirtualServiceRoutes): RouteWeights {
  const result: RouteWeights = { version: undefined, canaryWeights: [] };
  for (const { version, config } of routeConfigs((dump ?? {}) as Json)) {
    for (const host of (field(config, 'virtual_hosts') as Json[] | undefined) ?? []) {
      for (const route of (host.routes as Json[] | undefined) ?? []) {
        if (!fromVirtualService(route, vs) || matchesVersionHeader(route)) continue;
        const weight = canaryWeightOf((route.route as Json | undefined) ?? {}, vs);
        if (weight === undefined) continue;
        result.canaryWeights.push(weight);
        result.version ??= version;
      }
    }
  }
  return result;
}
