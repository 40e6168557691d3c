/**
 * The Kubernetes host of the reconcile step (controller/reconcile/reconcile-step.ts): reads
 * one candidate Deployment fresh, its action and status annotations, its policy and target,
 * and adapts the Deployment's status annotation, core/v1 Events and the VirtualService router
 * to the step's host interfaces. Returns when to come back.
 */
import type { Policy } from '../policy/policy.js';
import type { V1Deployment } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import type { MetricsProvider } from '../analysis/prometheus.js';
import type { MachineOptions } from '../engine/rollout-machine.js';
import type { RolloutPhase } from '../engine/rollout-state.js';
import type { AfterAdvanceInput, PolicyLookup, ReconcileHost, RolloutInputs, StoredStatus } from '../reconcile/host.js';
import { reconcileStep } from '../reconcile/reconcile-step.js';
import type { TrafficRouter } from '../traffic/router.js';
import type { CandidateAvailabilityReader } from './candidate-availability.js';
import type { DecisionMonitor } from './decision-monitor.js';
import type { EventRecorder } from './event-recorder.js';
import type { ExtprocCoverage } from './extproc-coverage.js';
import type { PolicySourceReader } from './policy-source.js';
import { ANNOTATION, deploymentFingerprint, parseAction, parseStatus, serializeStatus, type RolloutTarget } from './rollout-status.js';
import type { DeploymentStatusStore } from './status-store.js';
import type { TargetResolver } from './target-resolver.js';

export interface ReconcilerDeps {
  store: DeploymentStatusStore;
  policies: PolicySourceReader;
  targets: TargetResolver;
  routerFor: (namespace: string, target: RolloutTarget, policy: Policy) => TrafficRouter;
  events: EventRecorder;
  metrics: MetricsProvider;
  options: MachineOptions;
  clock: () => number;
  logger: Logger;
  /** The candidate's available replicas, which gate weight steps; not tracked when undefined. */
  availability?: CandidateAvailabilityReader;
  /** Pauses a rollout whose service gets traffic but no extproc decisions (silent fail-open); off when undefined. */
  decisions?: DecisionMonitor;
  /** At a rollout's start, a policy metric no extproc evaluator produces makes it Invalid; off when undefined. */
  coverage?: ExtprocCoverage;
}

export interface ReconcileOutcome {
  /** Epoch ms of the engine's next wake-up. */
  wakeAt?: number;
  /** Something is not there yet; look again after this long. */
  requeueAfterMs?: number;
  /** The rollout's phase after this reconcile; undefined when the Deployment is not (or no longer) managed. */
  phase?: RolloutPhase;
  /** Traffic router calls made (VirtualService updates). */
  trafficUpdates?: number;
  /** Milliseconds spent per stage, for debug logs and the benchmark. */
  timings?: Record<string, number>;
}

const WAITING_REQUEUE_MS = 2_000;
/** How long a resolved target is reused for wake-ups of an unchanged Deployment. */
const TARGET_REUSE_MS = 30_000;

interface CachedTarget {
  fingerprint: string;
  target: RolloutTarget;
  at: number;
}

export class Reconciler {
  // A pure shortcut: wake-ups of an unchanged Deployment reuse its target for a while instead
  // of re-reading the VirtualService, DestinationRules and ReplicaSets. A change to the
  // Deployment (new revision, annotations) resolves again; so does a failed reconcile.
  private readonly targets = new Map<string, CachedTarget>();
  /** Rollout revisions already warned that extproc's coverage report could not be read. */
  private readonly coverageWarned = new Set<string>();

  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileOutcome> {
    const { deps } = this;
    const timings: Record<string, number> = {};
    let mark = performance.now();
    const lap = (stage: string) => {
      const now = performance.now();
      timings[stage] = Math.round((now - mark) * 10) / 10;
      mark = now;
    };
    const deployment = await deps.store.read(namespace, name);
    lap('read');
    const annotations = deployment?.metadata?.annotations ?? {};
    if (!deployment || !annotations[ANNOTATION.virtualService]) return {};
    const log = deps.logger.child({ deployment: `${namespace}/${name}` });

    const rawAction = annotations[ANNOTATION.action];
    const statusText = annotations[ANNOTATION.status];
    const policyName = annotations[ANNOTATION.policy] || 'default';
    const lookup = await deps.policies.lookup(namespace, policyName);
    lap('policy');
    const cacheKey = `${namespace}/${name}`;
    const cached = this.targets.get(cacheKey);
    const fingerprint = deploymentFingerprint(deployment);
    const action = parseAction(rawAction);
    const reusable = cached && cached.fingerprint === fingerprint && deps.clock() - cached.at < TARGET_REUSE_MS && !action;
    const resolution = reusable ? { kind: 'ready' as const, target: cached.target } : await deps.targets.resolve(deployment);
    if (resolution.kind === 'ready') {
      if (!reusable) this.targets.set(cacheKey, { fingerprint, target: resolution.target, at: deps.clock() });
    } else this.targets.delete(cacheKey);
    lap('resolve');

    const stored = readStored(statusText);
    const policy = resolution.kind === 'ready' && 'policy' in lookup && this.startsRollout(stored, resolution.target, action) ? await this.checkCoverage(deployment, cacheKey, lookup, resolution.target, action === 'retry', log) : lookup;
    lap('coverage');
    const inputs: RolloutInputs = {
      stored,
      action: rawAction === undefined ? undefined : { raw: rawAction, action },
      actionLabel: ANNOTATION.action,
      policyName,
      policy,
      target: resolution,
    };
    try {
      const outcome = await reconcileStep(inputs, this.host(namespace, deployment, cacheKey), log, lap);
      if (outcome.waiting !== undefined) return { requeueAfterMs: WAITING_REQUEUE_MS, ...(outcome.phase ? { phase: outcome.phase } : {}) };
      return { phase: outcome.phase, trafficUpdates: outcome.trafficUpdates, timings, ...(outcome.wakeAt === undefined ? {} : { wakeAt: outcome.wakeAt }) };
    } catch (err) {
      this.targets.delete(cacheKey);
      throw err;
    }
  }

  /** A rollout starts (or may start again): nothing stored yet, a new revision, Invalid input, or a retry. */
  private startsRollout(stored: StoredStatus, target: RolloutTarget, action: ReturnType<typeof parseAction>): boolean {
    if (!this.deps.coverage) return false;
    if (stored.kind !== 'ok' || action === 'retry') return true;
    return stored.status.phase === 'Invalid' || (stored.status.target !== undefined && stored.status.target.canaryHash !== target.canaryHash);
  }

  /**
   * The policy if extproc's evaluators produce every metric it reads for the service; a
   * problem (the rollout Invalid) when they do not. An unreadable report keeps the policy
   * and records one Warning per revision: the check cannot decide, the analysis still guards.
   */
  private async checkCoverage(deployment: V1Deployment, key: string, lookup: { policy: Policy }, target: RolloutTarget, retry: boolean, log: Logger): Promise<PolicyLookup> {
    const service = target.service ?? target.virtualService;
    // A retry (after fixing extproc's config) reads the report afresh.
    const verdict = await this.deps.coverage!.check(lookup.policy, service, retry);
    if (verdict.kind === 'uncovered') return { problem: verdict.problem };
    if (verdict.kind === 'unknown') {
      const warned = `${key}@${target.canaryHash}`;
      log.warn({ service, reason: verdict.reason }, 'evaluator coverage unknown; the rollout starts, its analyses decide');
      if (!this.coverageWarned.has(warned)) {
        if (this.coverageWarned.size > 1000) this.coverageWarned.clear();
        this.coverageWarned.add(warned);
        this.deps.events.enqueue(deployment, [{ severity: 'Warning', reason: 'EvaluatorCoverageUnknown', message: `${verdict.reason}; not checked whether every metric of policy "${lookup.policy.name}" has an evaluator for service "${service}" (a metric without data cannot pass its analysis)` }]);
      }
    }
    return lookup;
  }

  private host(namespace: string, deployment: V1Deployment, key: string): ReconcileHost {
    const { deps } = this;
    return {
      routerFor: (target, policy) => deps.routerFor(namespace, target, policy),
      status: {
        write: async (status, previousText, consumeAction) => {
          if (serializeStatus(status) !== previousText || consumeAction) await deps.store.write(deployment, status, consumeAction);
        },
      },
      // Events are the story, the status is the record: they are written in order, in the background.
      events: { record: (events) => deps.events.enqueue(deployment, events) },
      metrics: deps.metrics,
      clock: deps.clock,
      options: deps.options,
      logger: deps.logger,
      ...(deps.availability ? { candidateAvailability: (target: RolloutTarget) => deps.availability!.read(deployment, target.canaryHash) } : {}),
      ...(deps.decisions
        ? { afterAdvance: (input: AfterAdvanceInput) => deps.decisions!.check({ key, service: input.target.service ?? input.target.virtualService, namespace, policy: input.policy, state: input.state, options: input.options, now: input.now }) }
        : {}),
    };
  }
}

function readStored(text: string | undefined): StoredStatus {
  if (!text) return { kind: 'none' };
  try {
    return { kind: 'ok', status: parseStatus(text), text };
  } catch (err) {
    return { kind: 'corrupt', problem: `${ANNOTATION.status} is unreadable (${(err as Error).message})`, text };
  }
}
