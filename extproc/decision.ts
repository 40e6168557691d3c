import { isCanaryBucket, stickyBucket, BUCKETS } from './sticky.js';
import type { ServiceRouting } from './routing/state.js';

/** Why a request went where it went; reported in x-fledge-reason and counted on /metrics. */
export type DecisionReason =
  | 'unknown-service' // no routing state: Envoy's own route decides
  | 'shadow' // a mirrored copy: always the candidate
  | 'killed' // the routing state's kill switch
  | 'kill-switch' // the kill-switch flag
  | 'no-canary' // nothing is rolling out
  | 'flag' // the version flag's targeting chose
  | 'sticky' // weight, by the user's hash bucket
  | 'random' // weight, no user key: a random draw
  | 'error' // extproc failed; stable serves
  | 'guardrail' // the data-plane guardrail took the canary off (extproc/guardrail/)
  | 'probe' // a verified golden probe, pinned to the version it names (extproc/probes/)
  | 'routes-behind'; // on the response only: the proxy had no route yet for the version chosen, its weighted route served

export interface DecisionInput {
  state: ServiceRouting | undefined;
  shadow: boolean;
  userKey: string | undefined;
  killSwitch: boolean;
  /** The version flag's choice, when its targeting chose one. */
  flagVersion: string | undefined;
  /** The guardrail tripped on this service's canary: its users go to stable, whatever flags or weights say. */
  canaryTripped?: boolean;
  /** Uniform in [0, 1); injected so tests are deterministic. */
  random: () => number;
}

export interface Decision {
  version: string | undefined;
  reason: DecisionReason;
}

/** Which version serves this request. Pure: data in, data out. */
export function decideVersion(input: DecisionInput): Decision {
  const { state } = input;
  if (!state) return { version: undefined, reason: 'unknown-service' };
  if (input.shadow) return { version: state.canary ?? state.stable, reason: 'shadow' };
  if (state.killed) return { version: state.stable, reason: 'killed' };
  if (input.killSwitch) return { version: state.stable, reason: 'kill-switch' };
  if (!state.canary) return { version: state.stable, reason: 'no-canary' };
  if (input.canaryTripped) return { version: state.stable, reason: 'guardrail' };
  const { flagVersion } = input;
  if (flagVersion !== undefined && (flagVersion === state.stable || flagVersion === state.canary)) {
    return { version: flagVersion, reason: 'flag' };
  }
  if (input.userKey) {
    const canary = isCanaryBucket(stickyBucket(state.service, input.userKey), state.canaryWeight);
    return { version: canary ? state.canary : state.stable, reason: 'sticky' };
  }
  const canary = isCanaryBucket(Math.floor(input.random() * BUCKETS), state.canaryWeight);
  return { version: canary ? state.canary : state.stable, reason: 'random' };
}
