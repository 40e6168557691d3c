/**
 * What istiod does for the tests' Envoy: watches one VirtualService and pushes its routes to
 * the data plane's Envoy (file-based RDS), so the token-matched fledge-<subset> routes and
 * the weighted route that serve requests are the ones the controller wrote. Polls the API
 * server (a stand-in for istiod's push, not a model of its latency).
 */
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { VS_ANNOTATIONS } from '../../common/virtualservice-annotations.js';
import { HEADER_ROUTE_PREFIX, VERSION_HEADER, type VirtualService } from '../../controller/traffic/istio/virtual-service.js';
import type { DataPlane, ServiceSpec } from './dataplane.js';
import { VS_API } from './rollout-fixture.js';

/** The data plane's view of a VirtualService: stable, the canary while it has a header route, weight, token. */
export function serviceFromVirtualService(vs: VirtualService, service: string): ServiceSpec {
  const http = vs.spec.http ?? [];
  const byHeader = (r: (typeof http)[number]) => (r.match ?? []).some((m) => Object.keys(m?.headers ?? {}).some((h) => h.toLowerCase() === VERSION_HEADER));
  const weighted = http.find((r) => !byHeader(r) && (r.route ?? []).length === 2);
  if (!weighted) throw new Error(`VirtualService ${vs.metadata?.name} has no weighted route`);
  const annotations = vs.metadata?.annotations ?? {};
  const [first, second] = weighted.route!.map((d) => ({ subset: d.destination.subset!, weight: d.weight ?? 0 }));
  const stable = annotations[VS_ANNOTATIONS.stableSubset] === second!.subset ? second! : first!;
  const other = stable === first ? second! : first!;
  const canaryRouted = http.some((r) => r.name === `${HEADER_ROUTE_PREFIX}${other.subset}`);
  return {
    name: service,
    stable: stable.subset,
    ...(canaryRouted ? { canary: other.subset } : {}),
    canaryWeight: Math.round((100 * other.weight) / Math.max(1, other.weight + stable.weight)),
    ...(annotations[VS_ANNOTATIONS.routeToken] ? { routeToken: annotations[VS_ANNOTATIONS.routeToken] } : {}),
  };
}

/** Keeps the data plane's Envoy on the VirtualService until the returned stop() is called. */
export function followVirtualService(dp: DataPlane, kc: KubeConfig, namespace: string, name: string, service: string): { stop(): Promise<void>; synced(): Promise<void> } {
  const api = kc.makeApiClient(CustomObjectsApi);
  let stopped = false;
  let lastVersion = '';
  let appliedVersion = '';
  const loop = (async () => {
    while (!stopped) {
      try {
        const vs = (await api.getNamespacedCustomObject({ ...VS_API, namespace, name })) as VirtualService;
        const version = vs.metadata?.resourceVersion ?? '';
        if (version !== lastVersion) {
          lastVersion = version;
          const spec = serviceFromVirtualService(vs, service);
          if (spec.routeToken) dp.routeTokens.set(service, spec.routeToken);
          await dp.applyEnvoyRoutes([spec]);
          appliedVersion = version;
        }
      } catch {
        // Not there yet, or mid-change: the next poll tries again.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
    /** Resolves once Envoy runs the VirtualService as it is now. */
    async synced() {
      const now = ((await api.getNamespacedCustomObject({ ...VS_API, namespace, name })) as VirtualService).metadata?.resourceVersion ?? '';
      const deadline = Date.now() + 15_000;
      while (Number(appliedVersion || 0) < Number(now)) {
        if (Date.now() > deadline) throw new Error(`Envoy did not follow VirtualService ${namespace}/${name} to resourceVersion ${now} within 15 s`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}
