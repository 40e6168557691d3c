/**
 * Which policy metrics the configured evaluators can produce. A metric reading
 * inference_quality_score or inference_hallucination_total needs an evaluator that writes
 * it for the service (golden probes or a golden set, a judge, or opted-in self-reports);
 * without one the metric would have no data and the rollout would pause for ever. This
 * names such metrics up front, so `fledge up` and `fledge validate` can refuse to start.
 */
import type { Policy } from './policy.js';

export interface EvaluatorInventory {
  /** Golden probes run and the golden set has entries for this service. */
  goldenProbes(service: string): boolean;
  /** extproc checks golden prompts in this service's user traffic. */
  goldenTraffic(service: string): boolean;
  /** An LLM judge scores sampled answers. */
  judge: boolean;
  /** extproc trusts this service's self-reported quality headers (opt-in). */
  modelReported(service: string): boolean;
}

const PRODUCED_BY = [
  { series: 'inference_quality_score', what: 'quality scores' },
  { series: 'inference_hallucination_total', what: 'hallucination verdicts' },
] as const;

export interface UncoveredMetric {
  metric: string;
  series: string;
  message: string;
}

/** The metrics of the policy that no configured evaluator produces for the service. */
export function uncoveredMetrics(policy: Policy, service: string, inventory: EvaluatorInventory): UncoveredMetric[] {
  const covered = inventory.goldenProbes(service) || inventory.goldenTraffic(service) || inventory.judge || inventory.modelReported(service);
  if (covered) return [];
  const out = new Map<string, UncoveredMetric>();
  for (const step of policy.steps) {
    if (step.kind !== 'analysis') continue;
    for (const metric of step.analysis.metrics) {
      const texts = `${metric.provider.prometheus.query}\n${metric.samplesQuery ?? ''}`;
      const needed = PRODUCED_BY.find((p) => texts.includes(p.series));
      if (!needed || out.has(metric.name)) continue;
      out.set(metric.name, {
        metric: metric.name,
        series: needed.series,
        message:
          `policy "${policy.name}" metric ${metric.name} reads ${needed.series}, but no evaluator produces ${needed.what} for service "${service}": ` +
          'configure golden probes with a golden set that covers it (entries without `service`, or with this one), a golden file in extproc, or an LLM judge',
      });
    }
  }
  return [...out.values()];
}
