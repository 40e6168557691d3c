import { describe, expect, it } from 'vitest';
import { pushNumber } from '../../controller/traffic/istio/istiod-weight-verifier.js';
import { routeWeights } from '../../controller/traffic/istio/route-weights.js';

const VS = { namespace: 'models', name: 'chat', stableSubset: 'v1', canarySubset: 'v2' };
const meta = (ns = 'models', name = 'chat') => ({ filter_metadata: { istio: { config: `/apis/networking.istio.io/v1/namespaces/${ns}/virtual-service/${name}` } } });
const cluster = (subset: string) => `outbound|80|${subset}|chat.models.svc.cluster.local`;
const headerRoute = (subset: string) => ({ name: subset, match: { prefix: '/', headers: [{ name: 'x-fledge-version', string_match: { exact: subset } }] }, route: { cluster: cluster(subset) }, metadata: meta() });

function dump(routes: unknown[], version = '2026-11-27T07:00:00Z/42') {
  return {
    configs: [
      { '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump' },
      {
        '@type': 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
        dynamic_route_configs: [{ version_info: version, route_config: { name: 'http.8080', virtual_hosts: [{ name: 'chat.example.com:80', routes }] } }],
      },
    ],
  };
}

describe('routeWeights: the canary weight a proxy carries for a VirtualService', () => {
  it('reads weighted clusters, skipping the per-version header routes', () => {
    const weighted = { name: 'weighted', match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: cluster('v1'), weight: 75 }, { name: cluster('v2'), weight: 25 }] } }, metadata: meta() };
    expect(routeWeights(dump([headerRoute('v1'), headerRoute('v2'), weighted]), VS)).toEqual({ version: '2026-11-27T07:00:00Z/42', canaryWeights: [25] });
  });

  it('reads a single-cluster route (Istio drops zero weights) as 0 or 100', () => {
    const toStable = { name: 'weighted', match: { prefix: '/' }, route: { cluster: cluster('v1') }, metadata: meta() };
    expect(routeWeights(dump([headerRoute('v2'), toStable]), VS).canaryWeights).toEqual([0]);
    const toCanary = { ...toStable, route: { cluster: cluster('v2') } };
    expect(routeWeights(dump([toCanary]), VS).canaryWeights).toEqual([100]);
  });

  it('reads istiod\'s lowerCamelCase config dump as well as Envoy\'s snake_case one', () => {
    const camel = {
      configs: [
        {
          '@type': 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
          dynamicRouteConfigs: [
            {
              versionInfo: '2026-11-27T08:28:11Z/8',
              routeConfig: {
                virtualHosts: [
                  {
                    routes: [
                      { name: 'v2', match: { prefix: '/', headers: [{ name: 'x-fledge-version', stringMatch: { exact: 'v2' } }] }, route: { cluster: cluster('v2') }, metadata: { filterMetadata: meta().filter_metadata } },
                      { name: 'weighted', match: { prefix: '/' }, route: { weightedClusters: { clusters: [{ name: cluster('v1'), weight: 95 }, { name: cluster('v2'), weight: 5 }] } }, metadata: { filterMetadata: meta().filter_metadata } },
                    ],
                  },
                ],
              },
            },
          ],
        },
      ],
    };
    expect(routeWeights(camel, VS)).toEqual({ version: '2026-11-27T08:28:11Z/8', canaryWeights: [5] });
  });

  it('reads Envoy\'s per-resource dump (?resource=dynamic_route_configs)', () => {
    const weighted = { name: 'weighted', match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: cluster('v1'), weight: 50 }, { name: cluster('v2'), weight: 50 }] } }, metadata: meta() };
    const perResource = { configs: [{ '@type': 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig', version_info: '2026-11-27T07:00:00Z/9', route_config: { virtual_hosts: [{ routes: [weighted] }] } }] };
    expect(routeWeights(perResource, VS)).toEqual({ version: '2026-11-27T07:00:00Z/9', canaryWeights: [50] });
  });

  it('ignores routes of other VirtualServices and proxies without the VirtualService', () => {
    const other = { name: 'weighted', match: { prefix: '/' }, route: { cluster: cluster('v2') }, metadata: meta('models', 'other') };
    expect(routeWeights(dump([other]), VS)).toEqual({ version: undefined, canaryWeights: [] });
    expect(routeWeights({ configs: [] }, VS).canaryWeights).toEqual([]);
    expect(routeWeights(undefined, VS).canaryWeights).toEqual([]);
  });
});

describe('pushNumber: istiod push versions and nonces', () => {
  it('orders pushes by their counter, from a version or a nonce (version + UUID)', () => {
    expect(pushNumber('2026-11-27T07:00:00Z/42', false)).toBe(42);
    expect(pushNumber('2026-11-27T07:00:00Z/43' + '0b8e6a0e-5c1f-4c37-9a51-2b0f3c1d9e77', true)).toBe(43);
    expect(pushNumber(undefined, true)).toBeUndefined();
    expect(pushNumber('garbage', false)).toBeUndefined();
  });
});
