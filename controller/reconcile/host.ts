/**
 * What the reconcile step needs of a host (the Kubernetes controller, local mode): small
 * interfaces, one job each. A host reads one rollout's inputs into a RolloutInputs, hands
 * the step its sinks, and the step does the rest the same way in both modes.
 */
import type { Logger } from '../../common/logger.js';
import type { MetricsProvider } from '../analysis/prometheus.js';
import type { CandidateAvailability } from '../engine/candidate-gate.js';
import type { MachineOptions, Transition, UserAction } from '../engine/rollout-machine.js';
import type { RolloutState } from '../engine/rollout-state.js';
import type { Policy } from '../policy/policy.js';
import type { RolloutStatus, RolloutTarget } from '../kube/rollout-status.js';
import type { TrafficRouter } from '../traffic/router.js';

/** The stored status as the host found it. */
export type StoredStatus = { kind: 'none' } | { kind: 'ok'; status: RolloutStatus; text: string } | { kind: 'corrupt'; problem: string; text: string };

/** A user action waiting to be applied (an annotation, an action file). */
export interface PendingAction {
  /** As written, for messages. */
  raw: string;
  /** undefined when the text is not a known action. */
  action: UserAction | undefined;
}

export type PolicyLookup = { policy: Policy } | { problem: string };

export type TargetLookup =
  | { kind: 'ready'; target: RolloutTarget }
  /** The input is wrong: the rollout is Invalid until someone fixes it. */
  | { kind: 'invalid'; problem: string }
  /** Not there yet (e.g. the Deployment's ReplicaSet); try again shortly. */
  | { kind: 'waiting'; reason: string };

/** Everything the host read for one rollout, before the step decides anything. */
export interface RolloutInputs {
  stored: StoredStatus;
  action: PendingAction | undefined;
  /** How the host names its action channel in messages ("fledge.dev/action", "action"). */
  actionLabel: string;
  policyName: string;
  policy: PolicyLookup;
  target: TargetLookup;
}

/** Persists the status; `consumeAction` also removes the pending action, in the same write where the host can. */
export interface StatusStore {
  write(status: RolloutStatus, previousText: string | undefined, consumeAction: boolean): Promise<void>;
}

export interface RolloutEventRecord {
  severity: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** Records the transitions' Events (Kubernetes Events, local mode's event log). */
export interface EventSink {
  record(events: readonly RolloutEventRecord[], status: RolloutStatus): void;
}

/** The canary weight a host can read cheaply from its own routing state (local mode's traffic file). */
export interface WeightInForce {
  /** Whether the candidate is the service's canary right now. */
  candidateIsCanary: boolean;
  weight: number;
}

export interface ReconcileHost {
  /** The traffic router of this rollout's target; the policy carries what the router hands the data plane (the guardrail's limits). */
  routerFor(target: RolloutTarget, policy: Policy): TrafficRouter;
  status: StatusStore;
  events: EventSink;
  /** Analysis queries (Prometheus). */
  metrics: MetricsProvider;
  clock: () => number;
  options: MachineOptions;
  logger: Logger;
  /**
   * Optional: the weight in force, to notice drift (a restarted local stack that began
   * all-stable). A host without a cheap read leaves it out; nothing is re-set then.
   */
  weightInForce?(target: RolloutTarget): WeightInForce | undefined;
  /**
   * Optional: the candidate's available replicas (cluster mode), which gate every weight
   * increase; losing them all is a breach. Local mode's models are always there.
   */
  candidateAvailability?(target: RolloutTarget): Promise<CandidateAvailability | undefined>;
  /** Optional: a check after the engine advanced (the silent fail-open check), which may move the rollout on. */
  afterAdvance?(input: AfterAdvanceInput): Promise<Transition & { wakeAt?: number }>;
}

export interface AfterAdvanceInput {
  target: RolloutTarget;
  policy: Policy;
  state: RolloutState;
  options: MachineOptions;
  now: number;
}
