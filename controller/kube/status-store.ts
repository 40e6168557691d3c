/**
 * Reads and writes a rollout's state where it survives the controller: the Deployment's
 * `fledge.dev/status` annotation. Writes carry the resourceVersion they were based on, so
 * a concurrent change (a person setting an action, a second controller that wrongly thinks
 * it leads) makes our write fail with 409 instead of silently overwriting it.
 */
import { AppsV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { apiErrorText, isConflict } from './api-errors.js';
import { ANNOTATION, serializeStatus, type RolloutStatus } from './rollout-status.js';

export class StatusConflictError extends Error {
  override name = 'StatusConflictError';
}

export class DeploymentStatusStore {
  private readonly apps: AppsV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
  }

  async read(namespace: string, name: string): Promise<V1Deployment | undefined> {
    try {
      return await this.apps.readNamespacedDeployment({ namespace, name });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw new Error(`reading Deployment ${namespace}/${name} failed: ${apiErrorText(err)}`);
    }
  }

  /** Writes the status and, when one was consumed, removes the action annotation, in one patch. */
  async write(deployment: V1Deployment, status: RolloutStatus, consumedAction: boolean): Promise<V1Deployment> {
    const namespace = deployment.metadata!.namespace!;
    const name = deployment.metadata!.name!;
    const annotations: Record<string, string | null> = { [ANNOTATION.status]: serializeStatus(status) };
    if (consumedAction) annotations[ANNOTATION.action] = null;
    const body = { metadata: { resourceVersion: deployment.metadata!.resourceVersion, annotations } };
    try {
      return await this.apps.patchNamespacedDeployment({ namespace, name, body, fieldManager: 'fledge-controller' }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    } catch (err) {
      if (isConflict(err)) throw new StatusConflictError(`Deployment ${namespace}/${name} changed while it was reconciled; will reconcile again`);
      throw new Error(`writing ${ANNOTATION.status} on Deployment ${namespace}/${name} failed: ${apiErrorText(err)}`);
    }
  }
}
