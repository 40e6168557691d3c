/**
 * Resolves a rollouts-file entry to its routing target on the local stack: the service must
 * run the candidate (and the stable version) as model servers; the hashes are the local
 * stand-ins for pod-template-hashes that extproc labels metrics with.
 */
import type { RolloutTarget } from '../kube/rollout-status.js';
import type { LocalRolloutSpec } from './rollouts-file.js';
import { localRolloutHash, type TrafficState } from './traffic-state.js';

export type LocalTargetResolution = { target: RolloutTarget } | { problem: string };

/**
 * `previous` is the target the stored status ran with: once a rollout has started, its stable
 * version is the one it started from (a promotion makes the candidate the service's stable).
 */
export function resolveLocalTarget(spec: LocalRolloutSpec, traffic: TrafficState, previous: RolloutTarget | undefined): LocalTargetResolution {
  const service = traffic.services[spec.service];
  if (!service) return { problem: `service ${spec.service} is not part of the local stack (known: ${Object.keys(traffic.services).join(', ') || 'none'})` };
  const versions = Object.keys(service.upstreams);
  if (!versions.includes(spec.candidate)) return { problem: `no model server runs version ${spec.candidate} of ${spec.service} (known: ${versions.join(', ')})` };
  const sameCandidate = previous?.canarySubset === spec.candidate && previous.virtualService === spec.service;
  const stable = spec.stable ?? (sameCandidate ? previous.stableSubset : service.stable);
  if (!versions.includes(stable)) return { problem: `no model server runs the stable version ${stable} of ${spec.service} (known: ${versions.join(', ')})` };
  if (stable === spec.candidate) return { problem: `candidate ${spec.candidate} is already the stable version of ${spec.service}` };
  if (!sameCandidate && service.stable !== stable) return { problem: `${spec.service} serves ${service.stable} as stable, not ${stable}` };
  if (!sameCandidate && service.canary && service.canary !== spec.candidate && service.canaryWeight > 0) {
    return { problem: `${spec.service} is already rolling out ${service.canary} (weight ${service.canaryWeight}%)` };
  }
  return {
    target: {
      virtualService: spec.service,
      stableSubset: stable,
      canarySubset: spec.candidate,
      canaryHash: localRolloutHash(spec.service, spec.candidate),
      stableHash: localRolloutHash(spec.service, stable),
    },
  };
}
