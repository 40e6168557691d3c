/**
 * The cluster-mode controller: an informer on Deployments (one namespace or all) feeds the
 * reconcile queue with every Deployment that carries `fledge.dev/virtual-service`; each
 * reconcile schedules the next one at the engine's wake-up time. Only runs while leading.
 */
import { AppsV1Api, CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesListObject, type ObjectCache, type V1Deployment } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import type { MetricsProvider } from '../analysis/prometheus.js';
import type { MachineOptions } from '../engine/rollout-machine.js';
import { IstioVirtualServiceRouter, VirtualServiceUpdater } from '../traffic/istio/istio-router.js';
import type { IstiodWeightVerifier } from '../traffic/istio/istiod-weight-verifier.js';
import { ISTIO_GROUP, ISTIO_VERSION, type DestinationRule } from '../traffic/istio/virtual-service.js';
import { apiErrorText } from './api-errors.js';
import type { ControllerMetrics } from './controller-metrics.js';
import { DecisionMonitor, type DecisionMonitorOptions } from './decision-monitor.js';
import { EventRecorder } from './event-recorder.js';
import { ExtprocCoverage } from './extproc-coverage.js';
import { PolicySourceReader } from './policy-source.js';
import { Reconciler, type ReconcileOutcome } from './reconciler.js';
import { availabilityFingerprint, CandidateAvailabilityReader } from './candidate-availability.js';
import { ANNOTATION, deploymentFingerprint } from './rollout-status.js';
import { DeploymentStatusStore, StatusConflictError } from './status-store.js';
import { TargetResolver } from './target-resolver.js';
import { ReconcileQueue } from '../reconcile/work-queue.js';

export interface RolloutControllerOptions {
  kubeConfig: KubeConfig;
  /** Watch one namespace; undefined = all namespaces. */
  namespace?: string;
  metricsProvider: MetricsProvider;
  machine: MachineOptions;
  identity: string;
  logger: Logger;
  metrics: ControllerMetrics;
  concurrency?: number;
  clock?: () => number;
  /** The silent fail-open check (traffic without extproc decisions pauses the rollout); false turns it off. */
  decisionCheck?: DecisionMonitorOptions | false;
  /** Confirms each weight write in the proxies through istiod; none: not checked. */
  weightVerifier?: IstiodWeightVerifier;
  /** extproc's admin URL: its evaluator-coverage report is checked at each rollout's start; none: not checked. */
  extprocAdminUrl?: string;
}

export interface RunningRolloutController {
  /** True once the informer has listed the Deployments. */
  readonly synced: boolean;
  stop(): Promise<void>;
}

const INFORMER_RESTART_MS = 2_000;

export async function startRolloutController(o: RolloutControllerOptions): Promise<RunningRolloutController> {
  const clock = o.clock ?? Date.now;
  const log = o.logger;
  const updater = new VirtualServiceUpdater(o.kubeConfig, log);
  // Set once the informers exist; the stable Deployment and the DestinationRules are looked up in their caches.
  let cache: ObjectCache<V1Deployment> | undefined;
  let rules: ObjectCache<DestinationRule> | undefined;
  const events = new EventRecorder(o.kubeConfig, o.identity, log);
  const reconciler = new Reconciler({
    store: new DeploymentStatusStore(o.kubeConfig, (namespace, name) => cache?.get(name, namespace)),
    policies: new PolicySourceReader(o.kubeConfig),
    targets: new TargetResolver(o.kubeConfig, { deployments: async (namespace) => cache!.list(namespace), destinationRules: async (namespace) => rules!.list(namespace) }),
    routerFor: (namespace, target, policy) =>
      new IstioVirtualServiceRouter(updater, { namespace, name: target.virtualService }, { stable: target.stableSubset, canary: target.canarySubset }, target, o.weightVerifier, policy.guardrail?.thresholds),
    events,
    metrics: o.metricsProvider,
    options: o.machine,
    clock,
    logger: log,
    availability: new CandidateAvailabilityReader(o.kubeConfig),
    ...(o.extprocAdminUrl === undefined ? {} : { coverage: new ExtprocCoverage({ adminUrl: o.extprocAdminUrl, clock }) }),
    ...(o.decisionCheck === false ? {} : { decisions: new DecisionMonitor(o.metricsProvider, log, { intervalMs: Math.max(1_000, 30_000 / (o.machine.timeScale ?? 1)), ...o.decisionCheck }) }),
  });

  const queue = new ReconcileQueue<ReconcileOutcome>(
    async (key) => {
      const [namespace, name] = splitKey(key);
      const started = performance.now();
      let result = 'error';
      let timings: Record<string, number> | undefined;
      try {
        const outcome = await reconciler.reconcile(namespace, name);
        result = 'ok';
        timings = outcome.timings;
        o.metrics.setPhase(key, outcome.phase);
        return outcome;
      } finally {
        const seconds = (performance.now() - started) / 1000;
        o.metrics.reconcileSeconds.observe({ result }, seconds);
        log.debug({ deployment: key, durationMs: Math.round(seconds * 1e6) / 1e3, result, timings }, 'reconciled');
      }
    },
    {
      concurrency: o.concurrency ?? 4,
      clock,
      nextRunAt: (_key, outcome) => (outcome.requeueAfterMs !== undefined ? clock() + outcome.requeueAfterMs : outcome.wakeAt),
      onError: (key, err, attempt) => {
        if (err instanceof StatusConflictError) log.info({ deployment: key }, err.message);
        else log.error({ deployment: key, attempt, err: apiErrorText(err) }, 'reconcile failed; retrying with back-off');
      },
    },
    log,
  );

  // Our own status writes come back as updates; only changes made by others need a reconcile.
  const seen = new Map<string, string>();
  const onChange = (d: V1Deployment) => {
    const key = keyOf(d);
    if (!d.metadata?.annotations?.[ANNOTATION.virtualService]) {
      if (seen.delete(key)) {
        queue.cancel(key);
        o.metrics.setPhase(key, undefined);
      }
      return;
    }
    const fingerprint = fingerprintOf(d);
    if (seen.get(key) === fingerprint) return;
    seen.set(key, fingerprint);
    queue.enqueue(key);
  };

  const apps = o.kubeConfig.makeApiClient(AppsV1Api);
  const path = o.namespace ? `/apis/apps/v1/namespaces/${o.namespace}/deployments` : '/apis/apps/v1/deployments';
  const list = () => (o.namespace ? apps.listNamespacedDeployment({ namespace: o.namespace }) : apps.listDeploymentForAllNamespaces());
  const informer: Informer<V1Deployment> & ObjectCache<V1Deployment> = makeInformer(o.kubeConfig, path, list);
  cache = informer;
  let stopped = false;
  let synced = false;
  informer.on('add', onChange);
  informer.on('update', onChange);
  informer.on('delete', (d) => {
    const key = keyOf(d);
    seen.delete(key);
    queue.cancel(key);
    o.metrics.setPhase(key, undefined);
  });
  informer.on('error', (err: unknown) => {
    if (stopped) return;
    log.warn({ err: apiErrorText(err), path }, 'Deployment watch failed; restarting it');
    setTimeout(() => {
      if (!stopped) informer.start().catch((e: unknown) => log.error({ err: apiErrorText(e) }, 'restarting the Deployment watch failed'));
    }, INFORMER_RESTART_MS).unref();
  });
  const ruleInformer = await startDestinationRuleInformer(o.kubeConfig, o.namespace, log, () => stopped);
  rules = ruleInformer;
  // A DestinationRule that appears or changes may make an Invalid rollout of its namespace valid.
  const onRuleChange = (dr: DestinationRule) => {
    for (const key of seen.keys()) if (key.startsWith(`${dr.metadata?.namespace}/`)) queue.enqueue(key);
  };
  ruleInformer.on('add', onRuleChange);
  ruleInformer.on('update', onRuleChange);
  await informer.start().catch((err: unknown) => {
    throw new Error(`watching Deployments (${path}) failed: ${apiErrorText(err)}`);
  });
  synced = true;
  log.info({ namespace: o.namespace ?? '(all)', managed: seen.size }, 'controller watching Deployments');

  return {
    get synced() {
      return synced;
    },
    async stop() {
      stopped = true;
      await informer.stop();
      await ruleInformer.stop();
      await queue.stop();
      await events.flush();
      o.metrics.clearPhases();
    },
  };
}

/** DestinationRules change rarely and are read by every first reconcile: keep them in a cache. */
async function startDestinationRuleInformer(kc: KubeConfig, namespace: string | undefined, log: Logger, stopped: () => boolean): Promise<Informer<DestinationRule> & ObjectCache<DestinationRule>> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const base = `/apis/${ISTIO_GROUP}/${ISTIO_VERSION}`;
  const path = namespace ? `${base}/namespaces/${namespace}/destinationrules` : `${base}/destinationrules`;
  const list = async () =>
    (namespace
      ? await custom.listNamespacedCustomObject({ group: ISTIO_GROUP, version: ISTIO_VERSION, plural: 'destinationrules', namespace })
      : await custom.listClusterCustomObject({ group: ISTIO_GROUP, version: ISTIO_VERSION, plural: 'destinationrules' })) as KubernetesListObject<DestinationRule>;
  const informer = makeInformer<DestinationRule>(kc, path, list);
  informer.on('error', (err: unknown) => {
    if (stopped()) return;
    log.warn({ err: apiErrorText(err), path }, 'DestinationRule watch failed; restarting it');
    setTimeout(() => {
      if (!stopped()) informer.start().catch((e: unknown) => log.error({ err: apiErrorText(e) }, 'restarting the DestinationRule watch failed'));
    }, INFORMER_RESTART_MS).unref();
  });
  await informer.start().catch((err: unknown) => {
    throw new Error(`watching DestinationRules (${path}) failed: ${apiErrorText(err)}`);
  });
  return informer;
}

function keyOf(d: V1Deployment): string {
  return `${d.metadata?.namespace}/${d.metadata?.name}`;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

function fingerprintOf(d: V1Deployment): string {
  // Not metadata.generation: Deployments bump it on annotation changes too, our status included.
  // The candidate's availability is part of it: a weight step may wait for it, or a breach follow.
  return `${deploymentFingerprint(d)}|${availabilityFingerprint(d)}`;
}
