/**
 * A policy as the rollout engine uses it: the steps with every analysis step already
 * joined to its templates' metrics and args, all checked at load time.
 */
import type { ArgSpec } from '../analysis/args.js';
import type { PolicyGuardrail } from './guardrail.js';
import type { Duration, Metric } from './schema.js';

export interface ResolvedAnalysis {
  templateNames: string[];
  /** Metrics of all referenced templates, in order; names are unique. */
  metrics: Metric[];
  args: ArgSpec[];
}

export type PolicyStep =
  | { kind: 'setWeight'; weight: number }
  | { kind: 'pause'; duration?: Duration; durationMs?: number }
  | { kind: 'analysis'; analysis: ResolvedAnalysis }
  | { kind: 'shadow'; duration: Duration; durationMs: number; percent: number };

/** Argo's background analysis: runs from step `startingStep` (0-based) until the rollout ends. */
export interface BackgroundAnalysis {
  analysis: ResolvedAnalysis;
  startingStep: number;
}

export interface Policy {
  name: string;
  steps: PolicyStep[];
  background?: BackgroundAnalysis;
  /** The data-plane guardrail: its limits go to extproc; its trip metric is in `background`. */
  guardrail?: PolicyGuardrail;
  /** Where it was defined, for messages. */
  source: string;
}

export function describeStep(step: PolicyStep): string {
  switch (step.kind) {
    case 'setWeight':
      return `setWeight ${step.weight}`;
    case 'pause':
      return step.duration === undefined ? 'pause (until promoted)' : `pause ${step.duration}`;
    case 'analysis':
      return `analysis ${step.analysis.templateNames.join(', ')}`;
    case 'shadow':
      return `shadow ${step.percent}% for ${step.duration}`;
  }
}
