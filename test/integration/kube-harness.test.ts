// Exercises the real control plane from test/harness/kube.ts: Istio's CRD schemas are
// enforced by kube-apiserver, and manifests/rbac.yaml grants exactly what it should.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  KubeConfig,
  setHeaderOptions,
  Watch,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { errorStatus, errorText, startKube, type KubeHarness } from '../harness/kube.js';
import { makeDeploymentAvailable, podsOf } from '../harness/pods.js';
import { hashOnceCreated, waitUntil } from '../harness/rollout-fixture.js';

const VS = { group: 'networking.istio.io', version: 'v1', plural: 'virtualservices' } as const;

interface Route {
  destination: { host: string; subset?: string };
  weight?: number;
}
interface VirtualService extends KubernetesObject {
  spec: { hosts: string[]; http: { route: Route[] }[] };
}

function virtualService(name: string, namespace: string, stableWeight: number): VirtualService {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace },
    spec: {
      hosts: ['model.example.svc.cluster.local'],
      http: [
        {
          route: [
            { destination: { host: 'model', subset: 'stable' }, weight: stableWeight },
            { destination: { host: 'model', subset: 'canary' }, weight: 100 - stableWeight },
          ],
        },
      ],
    },
  };
}

/** Runs op and returns the HTTP status it failed with; fails the test if op succeeds. */
async function statusOf(op: () => Promise<unknown>): Promise<number | undefined> {
  try {
    await op();
  } catch (err) {
    return errorStatus(err);
  }
  throw new Error('expected the request to be rejected, but it succeeded');
}

/**
 * Starts a watch on VirtualServices in a namespace and resolves with the first event for
 * objectName, or rejects with the watch's error (e.g. 403).
 */
function firstWatchEvent(
  kc: KubeConfig,
  namespace: string,
  objectName: string,
  onStarted: () => Promise<void>,
): Promise<{ type: string; obj: VirtualService }> {
  return new Promise((resolve, reject) => {
    let abort: AbortController | undefined;
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      abort?.abort();
      fn();
    };
    new Watch(kc)
      .watch(
        `/apis/${VS.group}/${VS.version}/namespaces/${namespace}/${VS.plural}`,
        {},
        (type: string, obj: VirtualService) => {
          if (obj.metadata?.name === objectName) settle(() => resolve({ type, obj }));
        },
        (err: unknown) => settle(() => reject(err ?? new Error('watch closed without an event'))),
      )
      .then(async (ac) => {
        abort = ac;
        if (settled) ac.abort();
        else await onStarted();
      })
      .catch((err: unknown) => settle(() => reject(err)));
  });
}

describe('kube harness (real kube-apiserver + etcd)', () => {
  let kube: KubeHarness;
  let controllerKc: KubeConfig;
  let extprocKc: KubeConfig;
  const ns = 'default';

  beforeAll(async () => {
    kube = await startKube();
    await kube.apply(await readFile(new URL('../../manifests/rbac.yaml', import.meta.url), 'utf8'));
    controllerKc = await kube.kubeconfigFor('fledge-controller', 'fledge-system');
    extprocKc = await kube.kubeconfigFor('fledge-extproc', 'fledge-system');
  });

  afterAll(async () => {
    await kube?.stop();
  });

  it('creates a VirtualService with a weighted http route', async () => {
    const api = kube.adminKubeConfig.makeApiClient(CustomObjectsApi);
    await api.createNamespacedCustomObject({ ...VS, namespace: ns, body: virtualService('weighted', ns, 90) });
    const got = (await api.getNamespacedCustomObject({ ...VS, namespace: ns, name: 'weighted' })) as VirtualService;
    expect(got.spec.http[0]?.route.map((r) => [r.destination.subset, r.weight])).toEqual([
      ['stable', 90],
      ['canary', 10],
    ]);
  });

  it('rejects a VirtualService that violates the Istio CRD schema', async () => {
    const api = kube.adminKubeConfig.makeApiClient(CustomObjectsApi);
    const bad = virtualService('bad-weight', ns, 50) as unknown as {
      spec: { http: { route: Record<string, unknown>[] }[] };
    };
    // weight is an int32 in Istio's structural schema; a string must not get through.
    bad.spec.http[0]!.route[0]!['weight'] = 'fifty';
    let error: unknown;
    try {
      await api.createNamespacedCustomObject({ ...VS, namespace: ns, body: bad });
    } catch (err) {
      error = err;
    }
    expect(errorStatus(error)).toBe(422);
    expect(errorText(error)).toMatch(/spec\.http\[0\]\.route\[0\]\.weight.*integer/);
  });

  it('lets the fledge-controller ServiceAccount patch a VirtualService', async () => {
    await kube.apply(JSON.stringify(virtualService('shift-me', ns, 100)));
    const client = KubernetesObjectApi.makeApiClient(controllerKc);
    const patched = (await client.patch(
      virtualService('shift-me', ns, 75),
      undefined,
      undefined,
      'fledge-controller',
      undefined,
      PatchStrategy.MergePatch,
    )) as VirtualService;
    expect(patched.spec.http[0]?.route.map((r) => r.weight)).toEqual([75, 25]);
    // And it can read what it watches.
    const deployments = await controllerKc.makeApiClient(AppsV1Api).listDeploymentForAllNamespaces();
    expect(Array.isArray(deployments.items)).toBe(true);
  });

  it('denies the fledge-controller ServiceAccount what it was not granted (403)', async () => {
    const adminCore = kube.adminKubeConfig.makeApiClient(CoreV1Api);
    await adminCore.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'model-api-key' }, stringData: { key: 'secret' } },
    });
    const core = controllerKc.makeApiClient(CoreV1Api);
    expect(await statusOf(() => core.deleteNamespacedSecret({ name: 'model-api-key', namespace: ns }))).toBe(403);
    // The Secret is still there: the denial happened before anything was touched.
    await adminCore.readNamespacedSecret({ name: 'model-api-key', namespace: ns });

    const apps = controllerKc.makeApiClient(AppsV1Api);
    const deployment = {
      metadata: { name: 'model' },
      spec: {
        selector: { matchLabels: { app: 'model' } },
        template: {
          metadata: { labels: { app: 'model' } },
          spec: { containers: [{ name: 'model', image: 'example/model:1' }] },
        },
      },
    };
    expect(await statusOf(() => apps.createNamespacedDeployment({ namespace: ns, body: deployment }))).toBe(403);
  });

  it('confines the controller leader-election Lease to fledge-system', async () => {
    const coord = controllerKc.makeApiClient(CoordinationV1Api);
    const lease = (namespace: string) => ({
      namespace,
      body: { metadata: { name: 'fledge-controller' }, spec: { holderIdentity: 'test' } },
    });
    await coord.createNamespacedLease(lease('fledge-system'));
    expect(await statusOf(() => coord.createNamespacedLease(lease(ns)))).toBe(403);
  });

  it('writes kubeconfig files that a child process could load', async () => {
    const file = await kube.writeKubeconfig(controllerKc, 'fledge-controller');
    const fromFile = new KubeConfig();
    fromFile.loadFromFile(file);
    const vs = (await fromFile
      .makeApiClient(CustomObjectsApi)
      .getNamespacedCustomObject({ ...VS, namespace: ns, name: 'weighted' })) as VirtualService;
    expect(vs.metadata?.name).toBe('weighted');

    const admin = new KubeConfig();
    admin.loadFromFile(kube.adminKubeconfigPath);
    const namespaces = await admin.makeApiClient(CoreV1Api).listNamespace();
    expect(namespaces.items.map((n) => n.metadata?.name)).toContain('fledge-system');
  });

  it('lets fledge-extproc watch VirtualServices but not patch them', async () => {
    const adminObjects = KubernetesObjectApi.makeApiClient(kube.adminKubeConfig);
    const event = await firstWatchEvent(extprocKc, ns, 'watched', async () => {
      await adminObjects.create(virtualService('watched', ns, 60));
    });
    expect(event.type).toBe('ADDED');
    expect(event.obj.spec.http[0]?.route[0]?.weight).toBe(60);

    const client = KubernetesObjectApi.makeApiClient(extprocKc);
    const status = await statusOf(() =>
      client.patch(virtualService('watched', ns, 0), undefined, undefined, 'fledge-extproc', undefined, PatchStrategy.MergePatch),
    );
    expect(status).toBe(403);
  });

  it('runs the real Deployment controller: ReplicaSets, hashes and revisions from Kubernetes; Pods counted once reported Ready', async () => {
    const admin = kube.adminKubeConfig;
    const apps = admin.makeApiClient(AppsV1Api);
    const labels = { app: 'kcm-check' };
    const template = (image: string) => ({ metadata: { labels }, spec: { containers: [{ name: 'm', image }] } });
    await apps.createNamespacedDeployment({ namespace: ns, body: { metadata: { name: 'kcm-check' }, spec: { replicas: 2, selector: { matchLabels: labels }, template: template('example.invalid/m:1') } } });
    const first = await hashOnceCreated(admin, ns, 'kcm-check');
    const rs = (await apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: `pod-template-hash=${first}` })).items[0]!;
    expect(rs.metadata?.annotations?.['deployment.kubernetes.io/revision']).toBe('1');
    expect(rs.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Deployment', name: 'kcm-check', controller: true });
    // The ReplicaSet controller creates the Pods; without a kubelet they stay unready until reported.
    await waitUntil('two Pods', async () => (await podsOf(admin, ns, 'kcm-check')).length === 2);
    expect((await apps.readNamespacedDeployment({ namespace: ns, name: 'kcm-check' })).status?.availableReplicas ?? 0).toBe(0);
    const available = await makeDeploymentAvailable(admin, ns, 'kcm-check');
    expect(available.status).toMatchObject({ availableReplicas: 2, updatedReplicas: 2 });

    // A changed pod template is a new revision with a new hash.
    await apps.patchNamespacedDeployment({ namespace: ns, name: 'kcm-check', body: { spec: { template: template('example.invalid/m:2') } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const second = await hashOnceCreated(admin, ns, 'kcm-check');
    expect(second).not.toBe(first);
    const d = await apps.readNamespacedDeployment({ namespace: ns, name: 'kcm-check' });
    expect(d.metadata?.annotations?.['deployment.kubernetes.io/revision']).toBe('2');
  });
});
