import { dirname } from 'node:path';
import { clusterName, ROUTE_CONFIG_NAME, routeConfig, type LocalService } from '../controller/traffic/envoy/routes.js';

/**
 * Envoy bootstrap for the local stack and the tests: one listener whose HTTP filter chain
 * is ext_proc → router, with the routes of controller/traffic/envoy/routes.ts (inline, or by
 * file-based RDS for local mode's traffic router), and a cluster per model version.
 */

export interface EnvoyConfigOptions {
  listenPort: number;
  adminPort: number;
  /** The extproc gRPC port; omit for a listener without the ext_proc filter (benchmark baseline). */
  extprocPort?: number;
  /** extproc's Unix domain socket (a `pipe` address): used instead of extprocPort when set. */
  extprocSocket?: string;
  services: LocalService[];
  /** Per ext_proc message; past it Envoy continues without extproc (failure_mode_allow). */
  messageTimeoutMs?: number;
  /** A listener that answers every request itself: a near-free upstream for benchmarks. */
  directResponsePort?: number;
  /** The same routes without the ext_proc filter: the benchmark's baseline. */
  baselinePort?: number;
  /** The same routes with ext_proc failing closed: extproc's own errors become 500s (capacity tests). */
  failClosedPort?: number;
  /** Bind address; loopback by default. */
  address?: string;
  /**
   * Serve the ingress routes from this file (file-based RDS, watched by Envoy) instead of
   * inline, so local mode can change weights and mirrors without restarting Envoy.
   */
  routesFile?: string;
}

/**
 * Envoy ends every finished ext_proc stream with RST_STREAM. Node's HTTP/2 (nghttp2)
 * answers more than 1,000 resets in a burst on one connection with GOAWAY, failing the
 * streams in flight. Rotating connections well before that keeps every session under the limit.
 */
export const EXTPROC_STREAMS_PER_CONNECTION = 500;

export function envoyBootstrap(o: EnvoyConfigOptions): Record<string, unknown> {
  const address = o.address ?? '127.0.0.1';
  const timeout = o.messageTimeoutMs ?? 200;
  const routes = routeConfig(o.services);
  const withExtproc = o.extprocPort !== undefined || o.extprocSocket !== undefined;
  const ingressRoutes = o.routesFile ? { rds: rdsFromFile(o.routesFile) } : { route_config: routes };
  const listeners: unknown[] = [httpListener('ingress', address, o.listenPort, ingressRoutes, withExtproc ? extprocFilter(timeout, true) : undefined)];
  if (o.baselinePort !== undefined) listeners.push(httpListener('baseline', address, o.baselinePort, { route_config: routes }, undefined));
  if (o.failClosedPort !== undefined && withExtproc) listeners.push(httpListener('fail_closed', address, o.failClosedPort, { route_config: routes }, extprocFilter(timeout, false)));
  if (o.directResponsePort !== undefined) listeners.push(directResponseListener(address, o.directResponsePort));
  const clusters: unknown[] = o.services.flatMap((s) =>
    Object.entries(s.upstreams).map(([version, up]) => staticCluster(clusterName(s.name, version), socket(up.host, up.port), false)),
  );
  if (o.extprocSocket !== undefined) clusters.push(staticCluster('fledge_extproc', { pipe: { path: o.extprocSocket } }, true));
  else if (o.extprocPort !== undefined) clusters.push(staticCluster('fledge_extproc', socket('127.0.0.1', o.extprocPort), true));
  return {
    node: { id: 'fledge-local', cluster: 'fledge-local' },
    admin: { address: socket(address, o.adminPort) },
    static_resources: { listeners, clusters },
  };
}

function socket(address: string, port: number) {
  return { socket_address: { address, port_value: port } };
}

function rdsFromFile(file: string) {
  return {
    route_config_name: ROUTE_CONFIG_NAME,
    config_source: { resource_api_version: 'V3', path_config_source: { path: file, watched_directory: { path: dirname(file) } } },
  };
}

function httpListener(name: string, address: string, port: number, routes: { route_config: unknown } | { rds: unknown }, extproc: unknown) {
  const filters: unknown[] = [];
  if (extproc) filters.push(extproc);
  filters.push({ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } });
  return {
    name,
    address: socket(address, port),
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: name,
              ...routes,
              http_filters: filters,
            },
          },
        ],
      },
    ],
  };
}

/** The same filter settings the Istio EnvoyFilter in manifests/ inserts. */
export function extprocFilter(messageTimeoutMs: number, failOpen = true) {
  return {
    name: 'envoy.filters.http.ext_proc',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
      grpc_service: { envoy_grpc: { cluster_name: 'fledge_extproc' } },
      // Fail open: if extproc is down or slow the request goes on with the client's own
      // headers; lacking the route token, it can only match the weighted route.
      failure_mode_allow: failOpen,
      allow_mode_override: true,
      message_timeout: `${messageTimeoutMs / 1000}s`,
      processing_mode: {
        request_header_mode: 'SEND',
        response_header_mode: 'SEND',
        request_body_mode: 'NONE',
        response_body_mode: 'NONE',
        request_trailer_mode: 'SKIP',
        response_trailer_mode: 'SKIP',
      },
    },
  };
}

function directResponseListener(address: string, port: number) {
  return httpListener(
    'direct',
    address,
    port,
    {
      route_config: {
        name: 'direct',
        virtual_hosts: [{ name: 'direct', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: '{"ok":true}' } } }] }],
      },
    },
    undefined,
  );
}

function staticCluster(name: string, address: unknown, http2: boolean) {
  const cluster: Record<string, unknown> = {
    name,
    type: 'STATIC',
    connect_timeout: '0.25s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] },
  };
  if (http2) {
    cluster.typed_extension_protocol_options = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
        common_http_protocol_options: { max_requests_per_connection: EXTPROC_STREAMS_PER_CONNECTION },
      },
    };
  } else {
    // Node's HTTP servers (the sims) close a keep-alive connection after 5 s idle; Envoy must
    // drop it first, or a request sent on it as it closes fails with a 503 (connection reset).
    cluster.typed_extension_protocol_options = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http_protocol_options: {} },
        common_http_protocol_options: { idle_timeout: '2s' },
      },
    };
  }
  return cluster;
}
