import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { VIRTUAL_SERVICE } from '../../extproc/routing/virtualservice-source.js';
import type { KubeHarness } from './kube.js';
import { applyHeaderRoutes, ensureRouteToken, type VirtualService } from '../../controller/traffic/istio/virtual-service.js';

export interface VsSpec {
  name: string;
  namespace: string;
  host?: string;
  stable?: string;
  canary?: string;
  canaryWeight: number;
  annotations?: Record<string, string>;
  /**
   * Lay it out as the controller writes it (controller/traffic/istio/virtual-service.ts):
   * this route token, token-matched fledge-<subset> routes first (the canary's only when
   * `canaryServes` is not false). Without it: the old user-written layout.
   */
  routeToken?: string;
  canaryServes?: boolean;
}

/**
 * A VirtualService laid out as fledge expects: one route per subset matching
 * x-fledge-version (and, in the controller's layout, the route token), then the weighted
 * route (stable first, canary second).
 */
export function fledgeVirtualService(s: VsSpec) {
  if (s.routeToken !== undefined) return controllerLayout(s, s.routeToken);
  return userLayout(s);
}

function controllerLayout(s: VsSpec, routeToken: string) {
  const vs = userLayout(s) as unknown as VirtualService;
  const subsets = { stable: s.stable ?? 'v1', canary: s.canary ?? 'v2' };
  ensureRouteToken(vs, () => routeToken);
  applyHeaderRoutes(vs, subsets, s.canaryServes !== false);
  return vs;
}

function userLayout(s: VsSpec) {
  const host = s.host ?? s.name;
  const stable = s.stable ?? 'v1';
  const canary = s.canary ?? 'v2';
  const bySubset = (subset: string) => ({
    name: `${subset}-by-header`,
    match: [{ headers: { 'x-fledge-version': { exact: subset } } }],
    route: [{ destination: { host, subset } }],
  });
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: s.name, namespace: s.namespace, annotations: s.annotations ?? {} },
    spec: {
      hosts: [host],
      http: [
        bySubset(stable),
        bySubset(canary),
        {
          name: 'weighted',
          route: [
            { destination: { host, subset: stable }, weight: 100 - s.canaryWeight },
            { destination: { host, subset: canary }, weight: s.canaryWeight },
          ],
        },
      ],
    },
  };
}

/** Server-side applies the VirtualService as admin (what the controller would write). */
export async function applyVirtualService(kube: KubeHarness, s: VsSpec | object): Promise<void> {
  const body = 'canaryWeight' in s ? fledgeVirtualService(s as VsSpec) : s;
  await kube.apply(JSON.stringify(body));
}

export async function deleteVirtualService(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  await kc.makeApiClient(CustomObjectsApi).deleteNamespacedCustomObject({ ...VIRTUAL_SERVICE, namespace, name });
}

export async function ensureNamespace(kube: KubeHarness, name: string): Promise<void> {
  await kube.apply(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }));
}

/** Polls until ok() holds: the readiness check for "the watcher has seen the change". */
export async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await ok()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
