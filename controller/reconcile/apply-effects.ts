/**
 * The one place where the engine's traffic effects reach a router, for both hosts. A
 * reconcile may produce several weights (a setWeight step, then a rollback in the same
 * transition): only the last mirror and the last weight are applied, then a promotion. A
 * new effect type gets its case in `trafficPlan` (the switch is exhaustive, so the compiler
 * points here) and its call in `applyTraffic`.
 */
import type { Logger } from '../../common/logger.js';
import type { RolloutEffect } from '../engine/rollout-machine.js';
import type { RolloutTarget } from '../kube/rollout-status.js';
import type { TrafficRouter } from '../traffic/router.js';
import { verifyLiveWeight, type WeightVerification } from '../traffic/weight-verification.js';

export interface TrafficPlan {
  mirrorPercent?: number;
  weight?: number;
  /** The candidate must not serve: one router call covers weight 0, the mirror and its routes. */
  retire: boolean;
  promote: boolean;
}

export function trafficPlan(effects: readonly RolloutEffect[]): TrafficPlan {
  const plan: TrafficPlan = { retire: false, promote: false };
  for (const effect of effects) {
    switch (effect.type) {
      case 'set-weight':
        plan.weight = effect.weight;
        plan.retire = false;
        break;
      case 'retire-candidate':
        plan.retire = true;
        break;
      case 'set-mirror':
        plan.mirrorPercent = effect.percent;
        break;
      case 'promote-candidate':
        plan.promote = true;
        break;
      case 'event':
        break;
      default:
        return unknownEffect(effect);
    }
  }
  return plan;
}

export function planIsEmpty(plan: TrafficPlan): boolean {
  return plan.mirrorPercent === undefined && plan.weight === undefined && !plan.retire && !plan.promote;
}

export interface TrafficApplied {
  /** Router calls made. */
  calls: number;
  /** Whether the new weight is live in the proxies, when the router can tell (istiod). */
  verification?: WeightVerification;
}

/**
 * Applies the plan in order (a retirement alone; else mirror, weight, promotion). After a
 * weight write or a retirement (weight 0), a router that can see the proxies confirms it (it
 * never fails the reconcile).
 */
export async function applyTraffic(router: TrafficRouter, target: RolloutTarget, plan: TrafficPlan, log: Logger, clock: () => number = Date.now): Promise<TrafficApplied> {
  if (plan.retire) {
    await router.retireCandidate();
    log.info({ route: target.virtualService, canary: target.canarySubset, stable: target.stableSubset }, 'candidate retired: weight 0, no mirror, not the canary any more');
    // A rollback's weight 0 is the write that most needs to be live: confirmed like any other.
    const retired = await verifyLiveWeight(router, 0, clock);
    if (retired) log.info({ route: target.virtualService, ...retired }, retired.verified ? 'canary weight live in the proxies' : 'canary weight not confirmed in the proxies');
    return retired ? { calls: 1, verification: retired } : { calls: 1 };
  }
  let verification: WeightVerification | undefined;
  let calls = 0;
  if (plan.mirrorPercent !== undefined) {
    await router.setMirror(plan.mirrorPercent);
    calls++;
  }
  if (plan.weight !== undefined) {
    await router.setWeight(plan.weight);
    log.info({ route: target.virtualService, canaryWeight: plan.weight, canary: target.canarySubset, stable: target.stableSubset }, 'canary weight set');
    calls++;
    verification = await verifyLiveWeight(router, plan.weight, clock);
    if (verification) log.info({ route: target.virtualService, ...verification }, verification.verified ? 'canary weight live in the proxies' : 'canary weight not confirmed in the proxies');
  }
  if (plan.promote) {
    await router.promoteCandidate();
    log.info({ route: target.virtualService, stable: target.canarySubset, previousStable: target.stableSubset }, 'candidate promoted to stable');
    calls++;
  }
  return verification ? { calls, verification } : { calls };
}

function unknownEffect(effect: never): never {
  throw new Error(`no traffic handling for effect ${JSON.stringify(effect)}`);
}
