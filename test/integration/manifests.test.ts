// The Kubernetes manifests a platform team applies: accepted by a real kube-apiserver with
// Istio's CRD schemas, consistent with the contract ports, ServiceAccounts and the local
// Envoy settings.
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_YAML } from '../../controller/policy/default-policy.js';
import { extprocConfigSchema } from '../../extproc/config.js';
import { coverageReport } from '../../extproc/quality/coverage-report.js';
import { GoldenSet } from '../../extproc/quality/evaluators/golden-set.js';
import { inventoryFromReport } from '../../controller/kube/extproc-coverage.js';
import { policyFromConfigMap } from '../../controller/kube/policy-source.js';
import { loadBuiltInPolicies } from '../../controller/policy/load.js';
import { uncoveredMetrics } from '../../controller/policy/evaluator-coverage.js';
import { parseVirtualService } from '../../extproc/routing/virtualservice-parse.js';
import { EXTPROC_STREAMS_PER_CONNECTION, extprocFilter } from '../../local/envoy-config.js';
import { startKube, type KubeHarness } from '../harness/kube.js';

const MANIFESTS = resolve(import.meta.dirname, '../../manifests');
const text = (file: string) => readFileSync(join(MANIFESTS, file), 'utf8');
const exampleFiles = readdirSync(join(MANIFESTS, 'example')).filter((f) => f.endsWith('.yaml')).sort();
const EXTPROC_CLUSTER = 'outbound|50051||fledge-extproc.fledge-system.svc.cluster.local';
const ISTIO = { group: 'networking.istio.io', version: 'v1' } as const;

// Loosely typed views of the parsed documents.
type Doc = KubernetesObject & { spec?: any; data?: Record<string, string> };
function docs(file: string): Doc[] {
  return parseAllDocuments(text(file)).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Doc;
  });
}
function find(all: Doc[], kind: string, name: string): Doc {
  const doc = all.find((d) => d.kind === kind && d.metadata?.name === name);
  if (!doc) throw new Error(`no ${kind} ${name}`);
  return doc;
}

describe('manifests are accepted by a real kube-apiserver with Istio CRDs', () => {
  let kube: KubeHarness;
  const applied = new Map<string, KubernetesObject[]>();

  beforeAll(async () => {
    kube = await startKube({ istioCrds: 'all' });
    // istioctl creates istio-system in a real cluster; the EnvoyFilters live there.
    await kube.apply(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } }));
    for (const file of ['rbac.yaml', 'extproc.yaml', 'controller.yaml', 'envoyfilter.yaml', ...exampleFiles.map((f) => `example/${f}`)]) {
      applied.set(file, await kube.apply(text(file)));
    }
  });
  afterAll(() => kube?.stop());

  it('applies every document of every file', () => {
    for (const [file, objects] of applied) expect(objects.length, file).toBe(docs(file).length);
    expect(exampleFiles).toEqual(expect.arrayContaining(['deployments.yaml', 'destinationrule.yaml', 'virtualservice.yaml', 'policies.yaml']));
  });

  it('stores the EnvoyFilters with the ext_proc settings of the local Envoy, unpruned', async () => {
    const api = kube.adminKubeConfig.makeApiClient(CustomObjectsApi);
    const local = extprocFilter(200).typed_config as Record<string, unknown>;
    for (const [name, context] of [
      ['fledge-extproc-gateway', 'GATEWAY'],
      ['fledge-extproc-sidecar-outbound', 'SIDECAR_OUTBOUND'],
    ] as const) {
      const ef = (await api.getNamespacedCustomObject({ ...ISTIO, version: 'v1alpha3', plural: 'envoyfilters', namespace: 'istio-system', name })) as Doc;
      const [patch] = ef.spec.configPatches;
      expect(patch.applyTo).toBe('HTTP_FILTER');
      expect(patch.match.context).toBe(context);
      expect(patch.match.listener.filterChain.filter.subFilter.name).toBe('envoy.filters.http.router');
      expect(patch.patch.operation).toBe('INSERT_BEFORE');
      expect(patch.patch.value.name).toBe('envoy.filters.http.ext_proc');
      const stored = patch.patch.value.typed_config;
      expect(stored.grpc_service.envoy_grpc.cluster_name).toBe(EXTPROC_CLUSTER);
      // The cluster name is no valid :authority (Node's HTTP/2 server resets streams on its "|").
      expect(stored.grpc_service.envoy_grpc.authority).toBe(EXTPROC_CLUSTER.split('||')[1]);
      // A relative (INSERT_BEFORE) patch needs a priority to be ordered deterministically (IST0151).
      expect(ef.spec.priority).toBeGreaterThan(0);
      expect({ ...stored, grpc_service: undefined }).toEqual({ ...local, grpc_service: undefined });
    }
  });

  it('gives the ext_proc cluster HTTP/2 and rotates its connections below the rapid-reset limit', async () => {
    const dr = (await kube.adminKubeConfig
      .makeApiClient(CustomObjectsApi)
      .getNamespacedCustomObject({ ...ISTIO, plural: 'destinationrules', namespace: 'fledge-system', name: 'fledge-extproc' })) as Doc;
    expect(EXTPROC_CLUSTER).toContain(`||${dr.spec.host}`);
    expect(dr.spec.trafficPolicy.connectionPool.http).toEqual({ h2UpgradePolicy: 'UPGRADE', maxRequestsPerConnection: EXTPROC_STREAMS_PER_CONNECTION });
  });

  it('stores the example VirtualService so that extproc reads stable v1, canary v2 at weight 0', async () => {
    const vs = await kube.adminKubeConfig
      .makeApiClient(CustomObjectsApi)
      .getNamespacedCustomObject({ ...ISTIO, plural: 'virtualservices', namespace: 'models', name: 'chat' });
    const parsed = parseVirtualService(vs);
    expect(parsed).toMatchObject({ ok: true, routing: { service: 'chat', stable: 'v1', canary: 'v2', canaryWeight: 0, killed: false } });
    const http = (vs as Doc).spec.http as { match?: { headers: Record<string, unknown> }[] }[];
    // Only the weighted route: the controller adds the token-matched per-subset routes when it first manages it.
    expect(http.map((r) => Object.keys(r.match?.[0]?.headers ?? {}))).toEqual([[]]);
  });

  it('matches the DestinationRule subsets to the Deployments\' version labels', async () => {
    const dr = (await kube.adminKubeConfig
      .makeApiClient(CustomObjectsApi)
      .getNamespacedCustomObject({ ...ISTIO, plural: 'destinationrules', namespace: 'models', name: 'chat' })) as Doc;
    const deployments = await kube.adminKubeConfig.makeApiClient(AppsV1Api).listNamespacedDeployment({ namespace: 'models' });
    const versions = deployments.items.map((d) => d.spec?.template.metadata?.labels?.version).sort();
    expect(dr.spec.subsets.map((s: { labels: { version: string } }) => s.labels.version).sort()).toEqual(versions);
    const candidate = deployments.items.find((d) => d.metadata?.annotations?.['fledge.dev/virtual-service']);
    expect(candidate?.metadata?.name).toBe('chat-v2');
    expect(candidate?.metadata?.annotations?.['fledge.dev/policy']).toBe('default');
  });

  it('holds the seed\'s default policy in fledge-policies', async () => {
    const cm = await kube.adminKubeConfig.makeApiClient(CoreV1Api).readNamespacedConfigMap({ namespace: 'models', name: 'fledge-policies' });
    expect(cm.data?.default?.trim()).toBe(DEFAULT_POLICY_YAML.trim());
  });

  it('rejects a VirtualService that breaks Istio\'s schema (the schemas are enforced)', async () => {
    const bad = parseYaml(text('example/virtualservice.yaml')) as Doc;
    bad.metadata!.name = 'chat-bad';
    bad.spec.http[0].route[0].weight = 'heavy';
    await expect(kube.apply(JSON.stringify(bad))).rejects.toThrow(/weight/);
  });
});

describe('extproc.yaml and controller.yaml use the contract ports and ServiceAccounts', () => {
  const extproc = docs('extproc.yaml');
  const controller = docs('controller.yaml');
  const rbac = docs('rbac.yaml');

  it('runs extproc as fledge-extproc, 2 replicas, gRPC 50051 and admin 9101, probed on /readyz and /healthz', () => {
    expect(find(rbac, 'ServiceAccount', 'fledge-extproc').metadata?.namespace).toBe('fledge-system');
    const deployment = find(extproc, 'Deployment', 'fledge-extproc');
    const pod = deployment.spec.template.spec;
    expect(deployment.spec.replicas).toBe(2);
    expect(pod.serviceAccountName).toBe('fledge-extproc');
    const [container] = pod.containers;
    expect(container.ports.map((p: { containerPort: number }) => p.containerPort).sort()).toEqual([50051, 9101]);
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(container.resources.requests).toBeDefined();
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });

    const service = find(extproc, 'Service', 'fledge-extproc');
    expect(`outbound|50051||${service.metadata?.name}.${service.metadata?.namespace}.svc.cluster.local`).toBe(EXTPROC_CLUSTER);
    expect(service.spec.ports.map((p: { port: number }) => p.port).sort()).toEqual([50051, 9101]);
    expect(service.spec.ports.find((p: { port: number }) => p.port === 50051).appProtocol).toBe('grpc');
  });

  it('configures extproc for cluster mode with a config that validates, and mounts the flags directory', () => {
    const config = extprocConfigSchema.parse(parseYaml(find(extproc, 'ConfigMap', 'fledge-extproc-config').data!['extproc.yaml']!));
    expect(config.routing.source).toBe('virtualservice');
    expect(config.grpc).toEqual({ host: '0.0.0.0', port: 50051 });
    expect(config.admin).toEqual({ host: '0.0.0.0', port: 9101 });
    const mounts = find(extproc, 'Deployment', 'fledge-extproc').spec.template.spec.containers[0].volumeMounts as { mountPath: string; subPath?: string }[];
    const flagsDir = config.flags.file!.slice(0, config.flags.file!.lastIndexOf('/'));
    // A whole-directory mount: subPath mounts never see ConfigMap updates.
    expect(mounts.find((m) => m.mountPath === flagsDir)).toMatchObject({ mountPath: flagsDir });
    expect(mounts.find((m) => m.mountPath === flagsDir)?.subPath).toBeUndefined();
    // Its evaluators cover the example service under the example policies and the built-in ones: no rollout there is refused at start.
    const golden = GoldenSet.load(resolve(import.meta.dirname, '../..', config.quality.golden.file!.replace(/^\/app\//, '')));
    const report = coverageReport({ config: config.quality, golden, probeSecretConfigured: true, probesSeen: {} });
    const examplePolicies = find(docs('example/policies.yaml'), 'ConfigMap', 'fledge-policies').data!;
    const checked = [...Object.keys(examplePolicies), 'default', 'shadow-canary'].map((name) => policyFromConfigMap(examplePolicies, 'example', name, loadBuiltInPolicies())).filter((found) => 'policy' in found);
    expect(checked.length).toBeGreaterThanOrEqual(3);
    for (const found of checked) expect(uncoveredMetrics(found.policy, 'chat', inventoryFromReport(report))).toEqual([]);
    const flags = JSON.parse(find(extproc, 'ConfigMap', 'fledge-flags').data!['flags.json']!) as { flags: Record<string, unknown> };
    expect(Object.keys(flags.flags)).toEqual(expect.arrayContaining([config.flags.versionFlag, config.flags.killSwitchFlag]));
  });

  it('runs the controller as fledge-controller, 2 replicas, electing a leader in the Role\'s namespace, admin 9102', () => {
    const deployment = find(controller, 'Deployment', 'fledge-controller');
    const pod = deployment.spec.template.spec;
    expect(deployment.spec.replicas).toBe(2);
    expect(pod.serviceAccountName).toBe('fledge-controller');
    const args = pod.containers[0].args as string[];
    const leaseNamespace = find(rbac, 'Role', 'fledge-controller-leader-election').metadata?.namespace;
    expect(args).toEqual(expect.arrayContaining(['controller', `--lease-namespace=${leaseNamespace}`, '--admin-port=9102']));
    expect(args.some((a) => a.startsWith('--lease-name='))).toBe(true);
    // The evaluator-coverage check reads extproc's admin port through its Service.
    const service = find(extproc, 'Service', 'fledge-extproc');
    const adminPort = service.spec.ports.find((p: { name: string }) => p.name === 'http-admin').port;
    expect(args).toContain(`--extproc-admin-url=http://${service.metadata?.name}.${service.metadata?.namespace}.svc.cluster.local:${adminPort}`);
    expect(pod.containers[0].ports[0].containerPort).toBe(9102);
    expect(pod.containers[0].readinessProbe.httpGet.path).toBe('/readyz');
    expect(pod.containers[0].livenessProbe.httpGet.path).toBe('/healthz');
    expect(pod.containers[0].securityContext.readOnlyRootFilesystem).toBe(true);
  });
});
