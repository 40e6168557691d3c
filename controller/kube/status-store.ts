/**
 * Reads and writes a rollout's state where it survives the controller: the Deployment's
 * `fledge.dev/status` annotation. Writes carry the resourceVersion they were based on. On a
 * 409 the Deployment is read again: if its status is still the one this reconcile started
 * from, the change was someone else's (an action, a new annotation, a scale) and our status
 * is written on top of it; if the status itself moved (another writer), the write is given
 * up and the key reconciled again from what is stored.
 */
import { AppsV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { apiErrorText, isConflict, isNotFound } from './api-errors.js';
import { ANNOTATION, serializeStatus, type RolloutStatus } from './rollout-status.js';

export class StatusConflictError extends Error {
  override name = 'StatusConflictError';
}

const MAX_ATTEMPTS = 5;

/** The informer's copy of a Deployment, if it has one. */
export type CachedDeployment = (namespace: string, name: string) => V1Deployment | undefined;

export class DeploymentStatusStore {
  private readonly apps: AppsV1Api;
  /** resourceVersion of the Deployment as our last write left it, per namespace/name. */
  private readonly lastWritten = new Map<string, string>();

  constructor(
    kubeConfig: KubeConfig,
    private readonly cached?: CachedDeployment,
  ) {
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
  }

  /**
   * The Deployment as it is now. The informer's copy is used only when it is exactly what our
   * last write produced (so it holds our latest status); otherwise the informer may not have
   * seen that write yet, and the Deployment is read from the API server.
   */
  async read(namespace: string, name: string): Promise<V1Deployment | undefined> {
    const cached = this.cached?.(namespace, name);
    const written = this.lastWritten.get(`${namespace}/${name}`);
    if (cached && written !== undefined && cached.metadata?.resourceVersion === written) return cached;
    try {
      return await this.apps.readNamespacedDeployment({ namespace, name });
    } catch (err) {
      if (isNotFound(err)) {
        this.lastWritten.delete(`${namespace}/${name}`);
        return undefined;
      }
      throw new Error(`reading Deployment ${namespace}/${name} failed: ${apiErrorText(err)}`);
    }
  }

  /**
   * Writes the status and, when one was consumed, removes the action annotation, in one
   * patch. An action set after the one we consumed is left for the next reconcile.
   */
  async write(deployment: V1Deployment, status: RolloutStatus, consumedAction: boolean): Promise<V1Deployment> {
    const namespace = deployment.metadata!.namespace!;
    const name = deployment.metadata!.name!;
    const basedOn = deployment.metadata?.annotations?.[ANNOTATION.status];
    const consumed = deployment.metadata?.annotations?.[ANNOTATION.action];
    let current = deployment;
    for (let attempt = 1; ; attempt++) {
      const annotations: Record<string, string | null> = { [ANNOTATION.status]: serializeStatus(status) };
      if (consumedAction && current.metadata?.annotations?.[ANNOTATION.action] === consumed) annotations[ANNOTATION.action] = null;
      const body = { metadata: { resourceVersion: current.metadata!.resourceVersion, annotations } };
      try {
        const written = await this.apps.patchNamespacedDeployment({ namespace, name, body, fieldManager: 'fledge-controller' }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
        if (written.metadata?.resourceVersion) this.lastWritten.set(`${namespace}/${name}`, written.metadata.resourceVersion);
        return written;
      } catch (err) {
        this.lastWritten.delete(`${namespace}/${name}`);
        if (!isConflict(err)) throw new Error(`writing ${ANNOTATION.status} on Deployment ${namespace}/${name} failed: ${apiErrorText(err)}`);
        const fresh = await this.read(namespace, name);
        if (!fresh || fresh.metadata?.annotations?.[ANNOTATION.status] !== basedOn || attempt >= MAX_ATTEMPTS) {
          throw new StatusConflictError(`the status of Deployment ${namespace}/${name} changed while it was reconciled; reconciling again`);
        }
        current = fresh;
      }
    }
  }
}
