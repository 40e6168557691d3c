/**
 * Records rollout transitions as core/v1 Events on the candidate Deployment, so
 * `kubectl describe deployment` and `kubectl get events` tell the rollout's story.
 * A failed Event write is logged, never fatal: the status annotation is the record.
 */
import { CoreV1Api, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../common/logger.js';
import { apiErrorText } from './api-errors.js';

export const EVENT_SOURCE = 'fledge-controller';

export interface RolloutEventRecord {
  severity: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export class EventRecorder {
  private readonly core: CoreV1Api;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    kubeConfig: KubeConfig,
    private readonly identity: string,
    private readonly logger: Logger,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  /** Records in the background, in order; `flush()` waits for everything enqueued. */
  enqueue(deployment: V1Deployment, events: readonly RolloutEventRecord[]): void {
    this.pending = this.pending.then(() => this.record(deployment, events));
  }

  flush(): Promise<void> {
    return this.pending;
  }

  async record(deployment: V1Deployment, events: readonly RolloutEventRecord[]): Promise<void> {
    const namespace = deployment.metadata!.namespace!;
    const name = deployment.metadata!.name!;
    for (const ev of events) {
      const now = new Date();
      try {
        await this.core.createNamespacedEvent({
          namespace,
          body: {
            metadata: { name: `${name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`, namespace },
            involvedObject: { apiVersion: 'apps/v1', kind: 'Deployment', name, namespace, uid: deployment.metadata!.uid!, resourceVersion: deployment.metadata!.resourceVersion! },
            type: ev.severity,
            reason: ev.reason,
            // Analysis messages can be long; Events are for reading, the status keeps the detail.
            message: ev.message.length > 1000 ? `${ev.message.slice(0, 997)}...` : ev.message,
            source: { component: EVENT_SOURCE, host: this.identity },
            reportingComponent: EVENT_SOURCE,
            reportingInstance: this.identity,
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        });
      } catch (err) {
        this.logger.warn({ deployment: `${namespace}/${name}`, reason: ev.reason, err: apiErrorText(err) }, 'recording an Event failed');
      }
    }
  }
}
