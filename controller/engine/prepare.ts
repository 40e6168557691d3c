/**
 * Where a reconcile starts from, for the Kubernetes reconciler and local mode alike: the
 * stored state as it is, a fresh start (nothing stored, unreadable, a new candidate, or input
 * fixed before the rollout ever had a target), or a resume after fixed input; then the
 * pending user action, unless the start or resume already used it up. Pure.
 */
import { startRollout, transition, type MachineOptions, type RolloutEffect, type Transition, type UserAction } from './rollout-machine.js';
import type { Policy } from '../policy/policy.js';
import type { RolloutState } from './rollout-state.js';

export interface PrepareInput {
  policy: Policy;
  /** The stored state; undefined when there is none. */
  stored: RolloutState | undefined;
  /** Start again at step 0 even though a state is stored (unreadable, new candidate...). */
  restart: boolean;
  /** The stored state is Invalid because of the input, which is now fine. */
  inputFixed: boolean;
  action: UserAction | undefined;
  now: number;
  options: MachineOptions;
}

export function prepareRollout(input: PrepareInput): Transition {
  const { policy, stored, action, now, options } = input;
  const effects: RolloutEffect[] = [];
  let state: RolloutState;
  // A retry or resume that asked for exactly this restart is used up by it.
  let actionUsed = false;
  if (!stored || input.restart) {
    const started = startRollout(policy, now, options);
    state = started.state;
    effects.push(...started.effects);
    actionUsed = action === 'retry' || (input.inputFixed && action === 'resume');
  } else if (input.inputFixed) {
    // The routing target or policy was fixed: continue where the rollout stood.
    const resumed = transition(policy, stored, { type: 'action', action: 'resume', now }, options);
    state = resumed.state;
    effects.push(...resumed.effects);
    actionUsed = action === 'retry' || action === 'resume';
  } else {
    state = stored;
  }
  if (action && !actionUsed) {
    const acted = transition(policy, state, { type: 'action', action, now }, options);
    state = acted.state;
    effects.push(...acted.effects);
  }
  return { state, effects };
}
