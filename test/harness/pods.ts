/**
 * Stands in for the kubelet, and only for it: the harness runs no nodes, so the Pods the
 * real ReplicaSet controller creates stay Pending until a test reports them Ready (or not)
 * through the status subresource, as a kubelet would after a readiness probe. The real
 * ReplicaSet and Deployment controllers then count them (availableReplicas).
 */
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { waitUntil } from './rollout-fixture.js';

const selectorText = (labels: Record<string, string>) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');

/** The Deployment's live Pods (not being deleted), selected by its selector. */
export async function podsOf(kc: KubeConfig, namespace: string, deployment: string): Promise<V1Pod[]> {
  const d = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ namespace, name: deployment });
  const list = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace, labelSelector: selectorText(d.spec?.selector?.matchLabels ?? {}) });
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}

/** Reports each Pod's readiness the way the kubelet does: phase Running, Ready and ContainersReady conditions. */
export async function reportPodsReady(kc: KubeConfig, namespace: string, pods: V1Pod[], ready: boolean): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const now = new Date().toISOString();
  const status = ready ? 'True' : 'False';
  for (const pod of pods) {
    await core.patchNamespacedPodStatus(
      {
        namespace,
        name: pod.metadata!.name!,
        body: {
          status: {
            phase: 'Running',
            conditions: [
              { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
              { type: 'Initialized', status: 'True', lastTransitionTime: now },
              { type: 'ContainersReady', status, lastTransitionTime: now },
              { type: 'Ready', status, lastTransitionTime: now },
            ],
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }
}

/**
 * Waits for the ReplicaSet controller to create the Deployment's Pods for its current
 * template (all spec.replicas of them), reports them Ready, and waits until the Deployment
 * controller counts every one as available. Returns the Deployment as it then is.
 */
export async function makeDeploymentAvailable(kc: KubeConfig, namespace: string, name: string, timeoutMs = 30_000): Promise<V1Deployment> {
  const apps = kc.makeApiClient(AppsV1Api);
  let pods: V1Pod[] = [];
  await waitUntil(`Pods of Deployment ${namespace}/${name}`, async () => {
    const d = await apps.readNamespacedDeployment({ namespace, name });
    // Until the Deployment controller has seen the latest template, its revision may name the old ReplicaSet.
    if ((d.status?.observedGeneration ?? 0) < (d.metadata?.generation ?? 0)) return false;
    const hash = await currentHash(kc, d);
    pods = (await podsOf(kc, namespace, name)).filter((p) => hash !== undefined && p.metadata?.labels?.['pod-template-hash'] === hash);
    return pods.length === (d.spec?.replicas ?? 1);
  }, timeoutMs);
  await reportPodsReady(kc, namespace, pods, true);
  return waitForAvailable(kc, namespace, name, (d) => d.spec?.replicas ?? 1, timeoutMs);
}

/** Reports every Pod of the Deployment not ready and waits until the Deployment counts none available. */
export async function makeDeploymentUnavailable(kc: KubeConfig, namespace: string, name: string, timeoutMs = 30_000): Promise<V1Deployment> {
  await reportPodsReady(kc, namespace, await podsOf(kc, namespace, name), false);
  return waitForAvailable(kc, namespace, name, () => 0, timeoutMs);
}

/** Waits until the Deployment controller has observed the latest spec and reports `expected(d)` available replicas. */
export async function waitForAvailable(kc: KubeConfig, namespace: string, name: string, expected: (d: V1Deployment) => number, timeoutMs = 30_000): Promise<V1Deployment> {
  const apps = kc.makeApiClient(AppsV1Api);
  let last: V1Deployment | undefined;
  await waitUntil(`Deployment ${namespace}/${name} available replicas`, async () => {
    last = await apps.readNamespacedDeployment({ namespace, name });
    const s = last.status ?? {};
    if ((s.observedGeneration ?? 0) < (last.metadata?.generation ?? 0)) return false;
    if ((s.availableReplicas ?? 0) !== expected(last)) throw new Error(`availableReplicas ${s.availableReplicas ?? 0}, want ${expected(last)}`);
    return true;
  }, timeoutMs);
  return last!;
}

/** pod-template-hash of the Deployment's ReplicaSet for its current template (the highest revision), once the Deployment controller has made it. */
export async function currentHash(kc: KubeConfig, d: V1Deployment): Promise<string | undefined> {
  const namespace = d.metadata!.namespace!;
  const list = await kc.makeApiClient(AppsV1Api).listNamespacedReplicaSet({ namespace, labelSelector: selectorText(d.spec?.selector?.matchLabels ?? {}) });
  const revision = d.metadata?.annotations?.['deployment.kubernetes.io/revision'];
  if (!revision) return undefined;
  const rs = list.items.find(
    (r) => r.metadata?.ownerReferences?.some((o) => o.uid === d.metadata?.uid) && r.metadata?.annotations?.['deployment.kubernetes.io/revision'] === revision,
  );
  return rs?.metadata?.labels?.['pod-template-hash'];
}
