/**
 * Sidecar scoping check for `fledge validate`: a Sidecar resource that limits a workload's
 * egress (by host or by port) so that the ext_proc cluster is not visible makes istiod
 * insert fledge's ext_proc filter (EnvoyFilter, context SIDECAR_OUTBOUND) without its
 * cluster. Envoy accepts that silently, every ext_proc call fails and failure_mode_allow
 * hides it (issue 13). Offline: it reads the Istio resources it is given.
 */

/** Istio's default root namespace: EnvoyFilters and Sidecars there apply mesh-wide. */
export const ISTIO_ROOT_NAMESPACE = 'istio-system';

export interface MeshResource {
  file: string;
  /** Where in the file, for messages: "document 2" or "items[3]". */
  at: string;
  doc: Record<string, unknown>;
}

export interface ExtprocFilterTarget {
  /** "EnvoyFilter <ns>/<name>", or a description of the default. */
  source: string;
  namespace: string;
  selector: Record<string, string> | undefined;
  cluster: string;
  host: string;
  port: number;
}

export interface ScopingWarning {
  file: string;
  path: string;
  message: string;
}

/** What manifests/envoyfilter.yaml installs for sidecars: the target when no EnvoyFilter is given. */
export const DEFAULT_SIDECAR_TARGET: ExtprocFilterTarget = {
  source: "fledge's EnvoyFilter fledge-extproc-sidecar-outbound (manifests/envoyfilter.yaml)",
  namespace: ISTIO_ROOT_NAMESPACE,
  selector: { 'fledge.dev/extproc': 'enabled' },
  cluster: 'outbound|50051||fledge-extproc.fledge-system.svc.cluster.local',
  host: 'fledge-extproc.fledge-system.svc.cluster.local',
  port: 50051,
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const labelsOf = (v: unknown): Record<string, string> | undefined => {
  if (!isObject(v) || !isObject(v.labels)) return undefined;
  return Object.fromEntries(Object.entries(v.labels).filter((e): e is [string, string] => typeof e[1] === 'string'));
};
const metaOf = (doc: Record<string, unknown>) => (isObject(doc.metadata) ? doc.metadata : {});

/** Istio cluster names outbound|<port>|<subset>|<host>. */
function parseCluster(name: string): { port: number; host: string } | undefined {
  const m = /^outbound\|(\d+)\|[^|]*\|(.+)$/.exec(name);
  return m ? { port: Number(m[1]), host: m[2]! } : undefined;
}

/** The ext_proc filters an EnvoyFilter inserts into sidecars' outbound listeners (context SIDECAR_OUTBOUND or ANY). */
export function extprocTargets(resource: MeshResource): ExtprocFilterTarget[] {
  const { doc } = resource;
  if (doc.kind !== 'EnvoyFilter' || !isObject(doc.spec)) return [];
  const meta = metaOf(doc);
  const namespace = str(meta.namespace) ?? 'default';
  const patches = Array.isArray(doc.spec.configPatches) ? doc.spec.configPatches : [];
  const targets: ExtprocFilterTarget[] = [];
  for (const patch of patches) {
    if (!isObject(patch) || patch.applyTo !== 'HTTP_FILTER') continue;
    const context = isObject(patch.match) ? (str(patch.match.context) ?? 'ANY') : 'ANY';
    if (context !== 'SIDECAR_OUTBOUND' && context !== 'ANY') continue;
    const value = isObject(patch.patch) && isObject(patch.patch.value) ? patch.patch.value : undefined;
    if (value?.name !== 'envoy.filters.http.ext_proc' || !isObject(value.typed_config)) continue;
    const grpc = isObject(value.typed_config.grpc_service) ? value.typed_config.grpc_service : undefined;
    const cluster = grpc && isObject(grpc.envoy_grpc) ? str(grpc.envoy_grpc.cluster_name) : undefined;
    const parsed = cluster === undefined ? undefined : parseCluster(cluster);
    if (!cluster || !parsed) continue;
    targets.push({ source: `EnvoyFilter ${namespace}/${str(meta.name) ?? '?'}`, namespace, selector: labelsOf(doc.spec.workloadSelector), cluster, ...parsed });
  }
  return targets;
}

/** Whether an egress host pattern "<namespace>/<dnsName>" of a Sidecar in `sidecarNamespace` imports `host` (a Service FQDN). */
export function hostImported(pattern: string, sidecarNamespace: string, host: string): boolean {
  const slash = pattern.indexOf('/');
  if (slash < 0) return false; // Istio requires namespace/dnsName
  const ns = pattern.slice(0, slash);
  const dns = pattern.slice(slash + 1).toLowerCase();
  const serviceNamespace = host.split('.')[1] ?? '';
  const nsOk = ns === '*' || (ns === '.' ? sidecarNamespace === serviceNamespace : ns === serviceNamespace);
  if (!nsOk) return false;
  if (dns === '*') return true;
  if (dns.startsWith('*.')) return host.toLowerCase().endsWith(dns.slice(1));
  return dns === host.toLowerCase();
}

/**
 * Whether the Sidecar's egress makes host:port visible: no egress listeners at all is
 * Istio's default (everything); otherwise some listener without a port, or on that port,
 * must import the host.
 */
export function egressShows(sidecar: Record<string, unknown>, host: string, port: number): boolean {
  const spec = isObject(sidecar.spec) ? sidecar.spec : {};
  const egress = Array.isArray(spec.egress) ? spec.egress.filter(isObject) : [];
  if (egress.length === 0) return true;
  const namespace = str(metaOf(sidecar).namespace) ?? 'default';
  return egress.some((listener) => {
    const listenerPort = isObject(listener.port) ? listener.port.number : undefined;
    if (listenerPort !== undefined && listenerPort !== port) return false;
    const hosts = Array.isArray(listener.hosts) ? listener.hosts.filter((h): h is string => typeof h === 'string') : [];
    return hosts.some((h) => hostImported(h, namespace, host));
  });
}

/** Two label selectors can both match one pod unless they require different values for a key (absent = every pod). */
function selectorsOverlap(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  if (!a || !b) return true;
  return Object.entries(a).every(([k, v]) => b[k] === undefined || b[k] === v);
}

/** Whether the Sidecar applies to some workload the EnvoyFilter gives the ext_proc filter. */
function appliesToFiltered(sidecar: Record<string, unknown>, target: ExtprocFilterTarget): boolean {
  const sidecarNamespace = str(metaOf(sidecar).namespace) ?? 'default';
  const spec = isObject(sidecar.spec) ? sidecar.spec : {};
  // An EnvoyFilter outside the root namespace applies only in its own; a root-namespace Sidecar is the mesh default.
  const sameScope = target.namespace === ISTIO_ROOT_NAMESPACE || sidecarNamespace === ISTIO_ROOT_NAMESPACE || sidecarNamespace === target.namespace;
  return sameScope && selectorsOverlap(labelsOf(spec.workloadSelector), target.selector);
}

const describeSelector = (s: Record<string, string> | undefined) => (s ? Object.entries(s).map(([k, v]) => `${k}=${v}`).join(',') : 'every workload');

/** A warning for each Sidecar that hides an ext_proc cluster from workloads that have the filter. */
export function sidecarScopingWarnings(resources: readonly MeshResource[]): { warnings: ScopingWarning[]; targets: ExtprocFilterTarget[]; sidecars: number; assumedDefault: boolean } {
  const given = resources.flatMap(extprocTargets);
  const targets = given.length ? given : [DEFAULT_SIDECAR_TARGET];
  const sidecars = resources.filter((r) => r.doc.kind === 'Sidecar');
  const warnings: ScopingWarning[] = [];
  for (const { file, at, doc } of sidecars) {
    const meta = metaOf(doc);
    const name = `${str(meta.namespace) ?? 'default'}/${str(meta.name) ?? '?'}`;
    for (const target of targets) {
      if (!appliesToFiltered(doc, target) || egressShows(doc, target.host, target.port)) continue;
      const serviceNamespace = target.host.split('.')[1];
      warnings.push({
        file,
        path: `${at} (Sidecar ${name}) spec.egress`,
        message:
          `hides the ext_proc cluster ${target.cluster} from workloads that ${target.source} gives the ext_proc filter (${describeSelector(target.selector)}): ` +
          `istiod inserts the filter without its cluster, every ext_proc call fails and failure_mode_allow hides it (no flags, no stickiness, no series). ` +
          `Add "${serviceNamespace}/${target.host}" to an egress listener without a port or on port ${target.port}`,
      });
    }
  }
  return { warnings, targets, sidecars: sidecars.length, assumedDefault: given.length === 0 };
}
