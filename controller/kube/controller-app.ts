/**
 * `fledge controller` as one unit: admin port always up, Lease leader election, and the
 * rollout controller running only while this replica leads.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { PrometheusProvider } from '../analysis/prometheus.js';
import { IstiodWeightVerifier } from '../traffic/istio/istiod-weight-verifier.js';
import { startAdminServer } from './admin-server.js';
import { ControllerMetrics } from './controller-metrics.js';
import type { DecisionMonitorOptions } from './decision-monitor.js';
import { LeaseElector } from './leader-election.js';
import { startRolloutController, type RunningRolloutController } from './rollout-controller.js';

export interface ControllerAppOptions {
  kubeConfig: KubeConfig;
  namespace?: string;
  prometheusUrl: string;
  timeScale: number;
  /** MachineOptions.evidenceMinWindowSeconds. */
  evidenceMinWindowSeconds?: number;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  adminHost: string;
  adminPort: number;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  concurrency?: number;
  /** How long a weight step waits for an available candidate replica before pausing (before timeScale; default 10m). */
  availabilityTimeoutMs?: number;
  /** Silent fail-open check: traffic and decision queries, minimum requests; false turns it off. */
  decisionCheck?: DecisionMonitorOptions | false;
  /** istiod's HTTP debug URL: confirm each weight write in the proxies (off when unset). */
  istiodDebugUrl?: string;
  /** extproc's admin URL: a rollout whose policy reads a metric none of its evaluators produces is Invalid at start (off when unset). */
  extprocAdminUrl?: string;
  logger: Logger;
  /** The leader cannot start reconciling (e.g. RBAC forbids the watch); the CLI exits so the Pod restarts. */
  onFatal?: (err: Error) => void;
}

export interface ControllerApp {
  adminPort: number;
  readonly isLeader: boolean;
  /** Graceful: stop reconciling, give the Lease up, close the admin port. */
  stop(): Promise<void>;
}

export async function startControllerApp(o: ControllerAppOptions): Promise<ControllerApp> {
  const metrics = new ControllerMetrics();
  const log = o.logger.child({ identity: o.identity });
  let running: RunningRolloutController | undefined;
  let starting: Promise<void> | undefined;

  const elector = new LeaseElector({
    kubeConfig: o.kubeConfig,
    namespace: o.leaseNamespace,
    name: o.leaseName,
    identity: o.identity,
    ...(o.leaseDurationMs === undefined ? {} : { leaseDurationMs: o.leaseDurationMs }),
    ...(o.renewDeadlineMs === undefined ? {} : { renewDeadlineMs: o.renewDeadlineMs }),
    ...(o.retryPeriodMs === undefined ? {} : { retryPeriodMs: o.retryPeriodMs }),
    logger: log,
    onStartedLeading: () => {
      metrics.leader.set(1);
      starting = startRolloutController({
        kubeConfig: o.kubeConfig,
        ...(o.namespace === undefined ? {} : { namespace: o.namespace }),
        metricsProvider: new PrometheusProvider({ address: o.prometheusUrl }),
        machine: { timeScale: o.timeScale, ...(o.evidenceMinWindowSeconds === undefined ? {} : { evidenceMinWindowSeconds: o.evidenceMinWindowSeconds }), ...(o.availabilityTimeoutMs === undefined ? {} : { availabilityTimeoutMs: o.availabilityTimeoutMs }) },
        identity: o.identity,
        logger: log,
        metrics,
        ...(o.concurrency === undefined ? {} : { concurrency: o.concurrency }),
        ...(o.decisionCheck === undefined ? {} : { decisionCheck: o.decisionCheck }),
        ...(o.extprocAdminUrl === undefined ? {} : { extprocAdminUrl: o.extprocAdminUrl }),
        ...(o.istiodDebugUrl === undefined ? {} : { weightVerifier: new IstiodWeightVerifier({ debugUrl: o.istiodDebugUrl, logger: log }) }),
      }).then(
        (c) => {
          running = c;
        },
        (err: Error) => {
          log.error({ err: err.message }, 'starting the rollout controller failed');
          o.onFatal?.(err);
        },
      );
    },
    onStoppedLeading: async () => {
      metrics.leader.set(0);
      await starting;
      await running?.stop();
      running = undefined;
    },
  });

  const admin = await startAdminServer(o.adminHost, o.adminPort, metrics.registry, () => !elector.isLeader || running?.synced === true);
  elector.start();
  log.info({ adminPort: admin.port, lease: `${o.leaseNamespace}/${o.leaseName}`, prometheus: o.prometheusUrl, timeScale: o.timeScale }, 'controller started');

  return {
    adminPort: admin.port,
    get isLeader() {
      return elector.isLeader;
    },
    async stop() {
      await elector.stop();
      await starting;
      await running?.stop();
      await admin.close();
    },
  };
}
