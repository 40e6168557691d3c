/**
 * After a weight write: asks the router whether the weight is live in the proxies, and how
 * long that took, for the rollout status. Only routers that can see the proxies verify.
 */
import type { TrafficRouter } from './router.js';

export interface WeightVerification {
  weight: number;
  /** The proxies confirmed the weight; false: not within the verifier's timeout (the rollout goes on). */
  verified: boolean;
  /** Milliseconds from the end of the write to the confirmation (or to giving up). */
  ms: number;
  /** Epoch ms of the check's end. */
  at: number;
}

export async function verifyLiveWeight(router: TrafficRouter, weight: number, clock: () => number = Date.now): Promise<WeightVerification | undefined> {
  if (!router.verifyWeight) return undefined;
  const started = performance.now();
  let verified = false;
  try {
    verified = await router.verifyWeight(weight);
  } catch {
    // A verifier that cannot reach istiod reports "not verified"; it never fails the reconcile.
  }
  return { weight, verified, ms: Math.round(performance.now() - started), at: clock() };
}
