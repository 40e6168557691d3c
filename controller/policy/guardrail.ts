/**
 * The data-plane guardrail in a policy (`spec.guardrail`): hard limits extproc enforces on
 * its own within a second (docs/extproc.md), and the background-analysis metric through
 * which the controller notices a trip and records RolledBack naming the guardrail.
 */
import type { ArgSpec } from '../analysis/args.js';
import type { GuardrailThresholds } from '../../extproc/guardrail/thresholds.js';
import { durationMs, metricSchema, type Duration, type GuardrailSpec, type Metric } from './schema.js';


/** The metric name a guardrail trip is reported under (status, Events, RolledBack message). */
export const GUARDRAIL_METRIC = 'guardrail';
/** A dedicated argument, so a policy's own `canary-hash` (whatever it means there) is left alone. */
const HASH_ARG = 'fledge-guardrail-hash';

export interface PolicyGuardrail {
  /** What the controller writes into the routing state for extproc. */
  thresholds: GuardrailThresholds;
  checkInterval: Duration;
}

export function resolveGuardrail(spec: GuardrailSpec): PolicyGuardrail {
  return {
    thresholds: {
      ...(spec.errorRate === undefined ? {} : { errorRate: spec.errorRate }),
      ...(spec.hallucinationRate === undefined ? {} : { hallucinationRate: spec.hallucinationRate }),
      minSamples: spec.minSamples,
      window: spec.window,
      maxAgeSeconds: durationMs(spec.maxAge) / 1000,
    },
    checkInterval: spec.checkInterval,
  };
}

/**
 * The background metric that turns a trip into a rollback: any extproc replica reporting the
 * canary's revision tripped (fledge_guardrail_tripped, 1 while it lasts) fails it at once.
 * No trip series reads as 0, never as "no data".
 */
export function guardrailMetric(guardrail: PolicyGuardrail): { metric: Metric; arg: ArgSpec } {
  const metric = metricSchema.parse({
    name: GUARDRAIL_METRIC,
    provider: { prometheus: { query: `max(fledge_guardrail_tripped{rollout_hash="{{args.${HASH_ARG}}}"}) or vector(0)` } },
    successCondition: 'result[0] < 1',
    interval: guardrail.checkInterval,
    action: 'rollback',
  });
  return { metric, arg: { name: HASH_ARG, fromHash: 'Latest' } };
}
