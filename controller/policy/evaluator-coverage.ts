/**
 * Which policy metrics the configured evaluators can produce. A metric reading
 * inference_quality_score or inference_hallucination_total needs an evaluator that writes
 * it for the service (golden probes or a golden set, a judge, or opted-in self-reports);
 * without one the metric would have no data and the rollout would pause for ever. A metric
 * reading inference_shadow_preference_total needs the pairwise LLM judge (the judge
 * configured in extproc, with shadow capture on). This names such metrics up front, so
 * `fledge up` and `fledge validate` can refuse to start.
 */
import type { Policy } from './policy.js';

export interface EvaluatorInventory {
  /** Golden probes run and the golden set has entries for this service. */
  goldenProbes(service: string): boolean;
  /** extproc checks golden prompts in this service's user traffic. */
  goldenTraffic(service: string): boolean;
  /** An LLM judge scores sampled answers. */
  judge: boolean;
  /** Shadow pairs go to the pairwise LLM judge (inference_shadow_preference_total). */
  pairwiseJudge: boolean;
  /** extproc trusts this service's self-reported quality headers (opt-in). */
  modelReported(service: string): boolean;
}

const ANSWER_EVALUATORS = 'configure golden probes with a golden set that covers it (entries without `service`, or with this one), a golden file in extproc, or an LLM judge';

/** Series only some evaluators write: who covers a service for each, and what to configure when none does. */
const PRODUCED_BY: { series: string; what: string; covered: (inventory: EvaluatorInventory, service: string) => boolean; remedy: string }[] = [
  { series: 'inference_quality_score', what: 'quality scores', covered: answerEvaluated, remedy: ANSWER_EVALUATORS },
  { series: 'inference_hallucination_total', what: 'hallucination verdicts', covered: answerEvaluated, remedy: ANSWER_EVALUATORS },
  {
    series: 'inference_shadow_preference_total',
    what: 'pairwise preferences of shadow pairs',
    covered: (inventory) => inventory.pairwiseJudge,
    remedy: 'configure the LLM judge in extproc (quality.judge.redisUrl, with shadow capture on) and run `fledge judge`',
  },
];

function answerEvaluated(inventory: EvaluatorInventory, service: string): boolean {
  return inventory.goldenProbes(service) || inventory.goldenTraffic(service) || inventory.judge || inventory.modelReported(service);
}

export interface UncoveredMetric {
  metric: string;
  series: string;
  message: string;
}

/** The metrics of the policy that no configured evaluator produces for the service. */
export function uncoveredMetrics(policy: Policy, service: string, inventory: EvaluatorInventory): UncoveredMetric[] {
  const missing = PRODUCED_BY.filter((p) => !p.covered(inventory, service));
  if (missing.length === 0) return [];
  const out = new Map<string, UncoveredMetric>();
  for (const step of policy.steps) {
    if (step.kind !== 'analysis') continue;
    for (const metric of step.analysis.metrics) {
      const texts = `${metric.provider.prometheus.query}\n${metric.samplesQuery ?? ''}`;
      const needed = missing.find((p) => texts.includes(p.series));
      if (!needed || out.has(metric.name)) continue;
      out.set(metric.name, {
        metric: metric.name,
        series: needed.series,
        message:
          `policy "${policy.name}" metric ${metric.name} reads ${needed.series}, but no evaluator produces ${needed.what} for service "${service}": ${needed.remedy}`,
      });
    }
  }
  return [...out.values()];
}
