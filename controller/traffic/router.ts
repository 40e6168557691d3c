/**
 * The traffic router: the only way the rollout engine's effects reach the mesh. One small
 * interface per rollout target, in the spirit of Argo Rollouts' TrafficRoutingReconciler,
 * so the reconciler never knows whether it talks to Istio or to a local Envoy.
 */
export interface TrafficRouter {
  /** Human-readable target for logs and messages, e.g. "VirtualService ns/name". */
  readonly description: string;
  /** Gives the canary `weight` percent (0-100) and the stable version the rest. */
  setWeight(weight: number): Promise<void>;
  /** Mirrors `percent` of the traffic to the canary; 0 removes the mirror. */
  setMirror(percent: number): Promise<void>;
  /**
   * After the last step: the candidate becomes the stable version (100% of the weighted
   * route, recorded as stable wherever the router keeps routing state) and nothing is
   * rolling out afterwards.
   */
  promoteCandidate(): Promise<void>;
  /**
   * The candidate must not serve (rolled back, aborted, failed): weight 0, no mirror, and
   * no way left to reach it — it is no longer the routing state's canary and its
   * per-version route is gone, so no flag, sticky bucket or header selects it. The next
   * setWeight (retry, new revision) makes it the canary again.
   */
  retireCandidate(): Promise<void>;
  /** Whether the route currently carries exactly this canary weight. */
  verifyWeight?(weight: number): Promise<boolean>;
}

/** A route cannot be changed: the target is missing or does not have the expected shape. */
export class TrafficRoutingError extends Error {
  override name = 'TrafficRoutingError';
}
