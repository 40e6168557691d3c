/**
 * Annotations on an Istio VirtualService managed by fledge. The controller writes them;
 * extproc (cluster mode) reads them to learn each service's routing state. They are part
 * of the contract between the two halves: see docs/cluster-mode.md.
 */
export const VS_ANNOTATIONS = {
  /** The subset of the weighted route that is the candidate (canary). */
  canarySubset: 'fledge.dev/canary-subset',
  /** The subset of the weighted route that is the stable version. */
  stableSubset: 'fledge.dev/stable-subset',
  /** "true" forces stable for every request (kill switch); "false" or absent: not killed. */
  killed: 'fledge.dev/killed',
  /** JSON object subset → rollout hash (pod-template-hash), e.g. {"v1":"abc","v2":"def"}. */
  rolloutHashes: 'fledge.dev/rollout-hashes',
  /**
   * The secret the controller's per-version routes (fledge-<subset>) match besides
   * x-fledge-version: random hex (>= 128 bits), written once and kept. Its presence marks
   * the VirtualService as managed by fledge: then only canary-subset names a canary.
   */
  routeToken: 'fledge.dev/route-token',
  /**
   * JSON: the canary's data-plane guardrail limits from the rollout's policy
   * ({errorRate, hallucinationRate, minSamples, window, maxAgeSeconds}); present only while
   * the canary may serve. Absent: extproc does not trip on its own.
   */
  guardrail: 'fledge.dev/guardrail',
  /**
   * Shadow step: the percent (0..100] of the stable's user requests whose copy extproc
   * sends to the canary subset and compares (docs/shadow.md). Istio's own mirror is not
   * used: Envoy discards a mirrored answer, and the copy would bypass the gateway's ext_proc.
   */
  shadowPercent: 'fledge.dev/shadow-percent',
  /** The service name extproc reports; default: the first DNS label of spec.hosts[0]. */
  service: 'fledge.dev/service',
} as const;
