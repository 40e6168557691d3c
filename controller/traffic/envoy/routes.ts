/**
 * The local Envoy's routes (local mode's traffic router, the local stack, the tests): a route
 * per serving version matching x-fledge-version and the service's route token (which only
 * extproc sends), then the weighted route (what serves every request extproc did not decide:
 * extproc down, hung or slower than message_timeout). Envoy's bootstrap is local/envoy-config.ts.
 */

import { SERVED_BY_HEADER } from '../../../common/route-token.js';

/** The header extproc sends with the service's secret token; the per-version routes match it. */
export const ROUTE_TOKEN_HEADER = 'x-fledge-route-token';
export const VERSION_HEADER = 'x-fledge-version';

export interface LocalService {
  /** The service name; also its host (authority) on the listener. */
  name: string;
  stable: string;
  /** The candidate while it may serve; absent when nothing rolls out or it was rolled back. */
  canary?: string;
  /** The canary's percent on the weighted route (the rollout's weight): what serves when extproc does not decide. */
  fallbackCanaryWeight?: number;
  /**
   * The secret the per-version routes match (x-fledge-route-token), shared with extproc's
   * routing state. Without it there are no per-version routes: the weights decide everything.
   */
  routeToken?: string;
  /** version → upstream address. */
  upstreams: Record<string, { host: string; port: number }>;
}

/**
 * Retry only what never reached a model (a connection that could not be made, a stream the
 * upstream refused): safe for a POST, and what Istio's default retry policy does in a mesh.
 * A busy model server that is slow to accept would otherwise cost a user a 503.
 */
const RETRY_UNSENT = { retry_on: 'connect-failure,refused-stream', num_retries: 2 };

/** The name of the route configuration, inline or delivered by file-based RDS. */
export const ROUTE_CONFIG_NAME = 'fledge-local';

export function clusterName(service: string, version: string): string {
  return `${service}--${version}`;
}

/**
 * The ingress routes: one per serving version (stable, and the canary while it may serve)
 * matching x-fledge-version AND the route token, which is removed before the upstream, and
 * naming its version in x-fledge-served-by on the response; then the weighted route, which
 * never carries that header. A client's own x-fledge-version, without the token, selects nothing.
 */
export function routeConfig(services: LocalService[]) {
  return {
    name: ROUTE_CONFIG_NAME,
    virtual_hosts: services.map((s) => ({
      name: s.name,
      domains: [s.name, `${s.name}:*`],
      routes: [
        ...servingVersions(s).map((version) => ({
          name: `${s.name}-${version}`,
          match: {
            prefix: '/',
            headers: [
              { name: VERSION_HEADER, string_match: { exact: version } },
              { name: ROUTE_TOKEN_HEADER, string_match: { exact: s.routeToken } },
            ],
          },
          request_headers_to_remove: [ROUTE_TOKEN_HEADER],
          // The route's word on who answered, whatever the upstream sent (extproc reads and removes it).
          response_headers_to_add: [{ header: { key: SERVED_BY_HEADER, value: version }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
          route: { cluster: clusterName(s.name, version), timeout: '120s', retry_policy: RETRY_UNSENT },
        })),
        { name: `${s.name}-weighted`, match: { prefix: '/' }, response_headers_to_remove: [SERVED_BY_HEADER], route: { weighted_clusters: { clusters: fallbackWeights(s) }, timeout: '120s', retry_policy: RETRY_UNSENT } },
      ],
    })),
  };
}

/** Versions that get a per-version route: none without a token; never a version that must not serve. */
export function servingVersions(s: LocalService): string[] {
  if (!s.routeToken) return [];
  return [s.stable, ...(s.canary && s.canary !== s.stable ? [s.canary] : [])].filter((v) => v in s.upstreams);
}

function fallbackWeights(s: LocalService) {
  const canaryWeight = s.canary ? Math.round(s.fallbackCanaryWeight ?? 0) : 0;
  const weights = [{ name: clusterName(s.name, s.stable), weight: 100 - canaryWeight }];
  if (s.canary && canaryWeight > 0) weights.push({ name: clusterName(s.name, s.canary), weight: canaryWeight });
  return weights.filter((w) => w.weight > 0);
}
