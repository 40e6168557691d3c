/**
 * `fledge controller --local` as one unit: the admin port (/healthz, /readyz, /metrics), the
 * state store and action files in the state dir, the local traffic router on the stack's
 * files, Prometheus for analysis, and the runner. No leader election: one controller per
 * state dir.
 */
import { join } from 'node:path';
import type { Logger } from '../../common/logger.js';
import { EnvoyRouteFile } from '../traffic/envoy/route-file.js';
import { PrometheusProvider } from '../analysis/prometheus.js';
import { startAdminServer } from '../kube/admin-server.js';
import { ControllerMetrics } from '../kube/controller-metrics.js';
import { ActionFiles } from './action-files.js';
import { LocalReconciler, type LocalPolicyLookup } from './local-reconciler.js';
import { LocalTrafficRouter } from './local-router.js';
import { LocalRolloutRunner } from './local-runner.js';
import { LocalStateStore } from './state-store.js';
import { readTrafficState } from './traffic-state.js';
import type { EvaluatorInventory } from '../policy/evaluator-coverage.js';

export interface LocalControllerOptions {
  stateDir: string;
  rolloutsFile: string;
  prometheusUrl: string;
  envoyAdminUrl: string;
  extprocAdminUrl: string;
  timeScale: number;
  /** MachineOptions.evidenceMinWindowSeconds. */
  evidenceMinWindowSeconds?: number;
  adminHost: string;
  adminPort: number;
  logger: Logger;
  /** The stack's evaluators (from its stack file), to refuse policies whose metrics none produces. */
  inventory?: EvaluatorInventory;
}

export interface LocalControllerApp {
  adminPort: number;
  stop(): Promise<void>;
}

/** The stack's files in a state dir (as LocalStack lays them out). */
export function stackFiles(stateDir: string) {
  return { trafficFile: join(stateDir, 'traffic.json'), routingFile: join(stateDir, 'routing.yaml'), routesFile: join(stateDir, 'envoy-routes', 'routes.json') };
}

export async function startLocalController(o: LocalControllerOptions): Promise<LocalControllerApp> {
  const metrics = new ControllerMetrics();
  const files = stackFiles(o.stateDir);
  const store = new LocalStateStore(o.stateDir);
  store.ensure();
  const actions = new ActionFiles(o.stateDir);
  const envoyRoutes = new EnvoyRouteFile(files.routesFile, o.envoyAdminUrl);
  let policies: LocalPolicyLookup = () => ({ problem: 'the rollouts file is not loaded yet' });
  const reconciler = new LocalReconciler({
    store,
    actions,
    policies: () => policies,
    traffic: () => {
      try {
        return readTrafficState(files.trafficFile);
      } catch (err) {
        throw new Error(`cannot read the local stack's traffic state ${files.trafficFile} (is 'fledge up' running with --state-dir ${o.stateDir}?): ${(err as Error).message}`);
      }
    },
    routerFor: (target, policy) =>
      new LocalTrafficRouter({ trafficFile: files.trafficFile, routingFile: files.routingFile, envoyRoutes, extprocAdminUrl: o.extprocAdminUrl }, target.virtualService, target.canarySubset, policy.guardrail?.thresholds),
    metrics: new PrometheusProvider({ address: o.prometheusUrl }),
    options: { timeScale: o.timeScale, ...(o.evidenceMinWindowSeconds === undefined ? {} : { evidenceMinWindowSeconds: o.evidenceMinWindowSeconds }) },
    clock: Date.now,
    logger: o.logger,
  });
  const runner = new LocalRolloutRunner({ rolloutsFile: o.rolloutsFile, ...(o.inventory ? { inventory: o.inventory } : {}), reconciler, actions, onPolicies: (p) => (policies = p), metrics, logger: o.logger });
  const admin = await startAdminServer(o.adminHost, o.adminPort, metrics.registry, () => runner.synced);
  try {
    await runner.start();
  } catch (err) {
    await admin.close();
    throw err;
  }
  o.logger.info({ adminPort: admin.port, stateDir: o.stateDir, rollouts: o.rolloutsFile, prometheus: o.prometheusUrl, timeScale: o.timeScale }, 'local controller started');
  return {
    adminPort: admin.port,
    async stop() {
      await runner.stop();
      await admin.close();
    },
  };
}
