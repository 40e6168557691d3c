/**
 * The candidate's serving capacity: its current ReplicaSet's availableReplicas (kept by the
 * ReplicaSet controller; it already honours minReadySeconds). The ReplicaSet of the
 * candidate's pod-template-hash holds exactly the Pods of the template being rolled out,
 * unlike the Deployment's own counts, which mix old and new Pods during a rolling update.
 */
import { AppsV1Api, type KubeConfig, type V1Deployment, type V1ReplicaSet } from '@kubernetes/client-node';
import type { CandidateAvailability } from '../engine/candidate-gate.js';
import { apiErrorText } from './api-errors.js';

/** Pure: what the ReplicaSet (undefined: not found) says, against the replicas the Deployment asks for. */
export function availabilityOf(rs: V1ReplicaSet | undefined, deployment: V1Deployment): CandidateAvailability {
  const desired = deployment.spec?.replicas ?? 1;
  if (!rs) return { available: 0, desired, observed: false };
  return { available: rs.status?.availableReplicas ?? 0, desired, observed: true };
}

/**
 * The Deployment counts that move when its Pods' availability does (the Deployment
 * controller copies them from its ReplicaSets). Part of the watch fingerprint, so a Pod that
 * becomes available, or stops being so, reconciles the rollout; our own status writes do not.
 */
export function availabilityFingerprint(d: V1Deployment): string {
  const s = d.status ?? {};
  return `${s.replicas ?? 0}/${s.updatedReplicas ?? 0}/${s.availableReplicas ?? 0}/${d.spec?.replicas ?? 1}`;
}

// Served from the API server's watch cache, like the target resolver's lists.
const FROM_WATCH_CACHE = '0';

export class CandidateAvailabilityReader {
  private readonly apps: AppsV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
  }

  async read(deployment: V1Deployment, podTemplateHash: string): Promise<CandidateAvailability> {
    const namespace = deployment.metadata!.namespace!;
    const selector = { ...(deployment.spec?.selector?.matchLabels ?? {}), 'pod-template-hash': podTemplateHash };
    const labelSelector = Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',');
    let items: V1ReplicaSet[];
    try {
      items = (await this.apps.listNamespacedReplicaSet({ namespace, labelSelector, resourceVersion: FROM_WATCH_CACHE })).items;
    } catch (err) {
      throw new Error(`listing the ReplicaSet ${podTemplateHash} of Deployment ${namespace}/${deployment.metadata?.name} failed: ${apiErrorText(err)}`);
    }
    const owned = items.find((rs) => (rs.metadata?.ownerReferences ?? []).some((o) => o.uid === deployment.metadata?.uid));
    return availabilityOf(owned, deployment);
  }
}
