/**
 * The local-mode host of the reconcile step (controller/reconcile/reconcile-step.ts): reads
 * one rollouts-file entry's stored status and action file, resolves its policy and target on
 * the local stack, and adapts the state dir (status file, action file, event log) and the
 * local Envoy router to the step's host interfaces.
 */
import type { Logger } from '../../common/logger.js';
import type { MetricsProvider } from '../analysis/prometheus.js';
import type { MachineOptions } from '../engine/rollout-machine.js';
import { TERMINAL_PHASES, type RolloutPhase } from '../engine/rollout-state.js';
import type { RolloutTarget } from '../kube/rollout-status.js';
import type { Policy } from '../policy/policy.js';
import type { PolicyLookup, ReconcileHost, RolloutInputs, TargetLookup } from '../reconcile/host.js';
import { reconcileStep } from '../reconcile/reconcile-step.js';
import type { TrafficRouter } from '../traffic/router.js';
import type { ActionFiles, PendingAction } from './action-files.js';
import { resolveLocalTarget } from './local-target.js';
import type { LocalRolloutSpec } from './rollouts-file.js';
import type { LocalStateStore } from './state-store.js';
import type { TrafficState } from './traffic-state.js';

/** The policy a rollout names, checked for the rollout's service (e.g. that its metrics have an evaluator). */
export type LocalPolicyLookup = (name: string, service: string) => PolicyLookup;

export interface LocalReconcilerDeps {
  store: LocalStateStore;
  actions: ActionFiles;
  policies: () => LocalPolicyLookup;
  traffic: () => TrafficState;
  routerFor: (target: RolloutTarget, policy: Policy) => TrafficRouter;
  metrics: MetricsProvider;
  options: MachineOptions;
  clock: () => number;
  logger: Logger;
}

export interface LocalReconcileOutcome {
  phase: RolloutPhase;
  wakeAt?: number;
}

export class LocalReconciler {
  constructor(private readonly deps: LocalReconcilerDeps) {}

  async reconcile(spec: LocalRolloutSpec): Promise<LocalReconcileOutcome> {
    const { deps } = this;
    const log = deps.logger.child({ rollout: spec.name });
    const stored = deps.store.read(spec.name);
    const status = stored.kind === 'ok' ? stored.status : undefined;
    const pending = deps.actions.read(spec.name);
    const inputs: RolloutInputs = {
      stored,
      action: pending,
      actionLabel: 'action',
      policyName: spec.policy,
      policy: deps.policies()(spec.policy, spec.service),
      target: this.target(spec, deps.traffic(), status?.target, status?.phase, pending),
    };
    const outcome = await reconcileStep(inputs, this.host(spec.name, pending), log);
    const phase = outcome.phase ?? status?.phase ?? 'Invalid';
    return outcome.wakeAt === undefined ? { phase } : { phase, wakeAt: outcome.wakeAt };
  }

  private target(spec: LocalRolloutSpec, traffic: TrafficState, previous: RolloutTarget | undefined, phase: RolloutPhase | undefined, pending: PendingAction | undefined): TargetLookup {
    const resolution = resolveLocalTarget(spec, traffic, previous);
    if ('target' in resolution) return { kind: 'ready', target: resolution.target };
    // A finished rollout is history: a later change elsewhere (its candidate promoted) does
    // not make it Invalid; only retry starts it again.
    const finished = previous !== undefined && phase !== undefined && TERMINAL_PHASES.includes(phase) && previous.canarySubset === spec.candidate && pending?.action !== 'retry';
    return finished ? { kind: 'ready', target: previous } : { kind: 'invalid', problem: resolution.problem };
  }

  private host(name: string, pending: PendingAction | undefined): ReconcileHost {
    const { deps } = this;
    return {
      routerFor: deps.routerFor,
      status: {
        write: async (status, previousText, consumeAction) => {
          deps.store.write(name, status, previousText);
          if (consumeAction && pending) deps.actions.consume(name, pending);
        },
      },
      events: { record: (events) => deps.store.appendEvents(name, events, deps.clock()) },
      metrics: deps.metrics,
      clock: deps.clock,
      options: deps.options,
      logger: deps.logger,
      // The traffic file is local mode's routing state: cheap to read, so drift is checked each time.
      weightInForce: (target) => {
        const service = deps.traffic().services[target.virtualService];
        if (!service) return undefined;
        return { candidateIsCanary: service.canary === target.canarySubset, weight: service.canaryWeight };
      },
    };
  }
}
