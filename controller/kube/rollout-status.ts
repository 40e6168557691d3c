/**
 * The `fledge.dev/*` annotations and the status JSON. The status is the engine's whole
 * RolloutState (what a restarted controller resumes from) plus the resolved target, so
 * `fledge status` and people reading the annotation see which subsets and hashes were used.
 */
import { parseRolloutState, serializeRolloutState, type RolloutState } from '../engine/rollout-state.js';
import { USER_ACTIONS, type UserAction } from '../engine/rollout-machine.js';
import { stableJson } from './stable-json.js';
import type { WeightVerification } from '../traffic/weight-verification.js';

export const ANNOTATION = {
  virtualService: 'fledge.dev/virtual-service',
  policy: 'fledge.dev/policy',
  stableSubset: 'fledge.dev/stable-subset',
  canarySubset: 'fledge.dev/canary-subset',
  action: 'fledge.dev/action',
  status: 'fledge.dev/status',
} as const;

export interface RolloutTarget {
  virtualService: string;
  stableSubset: string;
  canarySubset: string;
  canaryHash: string;
  /** Empty when no stable Deployment (or ReplicaSet) was found: baseline queries find no data. */
  stableHash: string;
  /** The service name extproc reports decisions under (fledge.dev/service on the VirtualService, else its first host's first label). */
  service?: string;
}

export interface RolloutStatus extends RolloutState {
  /** 1-based step for people; stepIndex stays the engine's. */
  step: number;
  steps: number;
  target?: RolloutTarget;
  /** Invalid because of the cluster objects (VirtualService, subsets, policy), not the engine: fixing them resumes the rollout. */
  inputProblem?: boolean;
  /** The last weight write checked in the proxies (controller --istiod-debug-url); absent when not checked. */
  weightVerified?: WeightVerification;
}

export function toStatus(state: RolloutState, steps: number, target: RolloutTarget | undefined, inputProblem = false): RolloutStatus {
  // Only the engine's fields are carried over from the state; summary fields are recomputed.
  const { step: _step, steps: _steps, target: _target, inputProblem: _input, ...engine } = state as RolloutStatus;
  const status: RolloutStatus = { ...engine, step: Math.min(state.stepIndex + 1, Math.max(steps, 1)), steps };
  if (target) status.target = target;
  if (inputProblem) status.inputProblem = true;
  return status;
}

export function serializeStatus(status: RolloutStatus): string {
  return serializeRolloutState(status);
}

export function parseStatus(text: string): RolloutStatus {
  const state = parseRolloutState(text) as RolloutStatus;
  return state;
}

export function parseAction(value: string | undefined): UserAction | undefined {
  const v = value?.trim().toLowerCase();
  return USER_ACTIONS.find((a) => a === v);
}

/** What makes a Deployment's rollout different, other than our own status: its pod template and the other annotations. */
export function deploymentFingerprint(d: { metadata?: { annotations?: Record<string, string> }; spec?: { template?: unknown } }): string {
  const { [ANNOTATION.status]: _ours, ...others } = d.metadata?.annotations ?? {};
  return stableJson([d.spec?.template, others]);
}
