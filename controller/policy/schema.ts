/**
 * The policy format: Argo Rollouts' canary steps and AnalysisTemplates, plus fledge's
 * additions (shadow steps, per-metric action, minimum samples, `stable` baseline in
 * conditions). Objects are strict where a typo would silently change a verdict (a
 * misspelt `successCondition` would make a metric always pass); Kubernetes envelopes
 * (metadata, the rest of a Rollout's spec) are loose so real manifests load verbatim.
 */
import { z } from 'zod';
import { compareSchema, countQueries } from './compare.js';
import { parseDuration } from './duration.js';

/** `10m`, `1h30m`, `30` or 30 (seconds). Kept as written; convert with durationMs(). */
export const durationSchema = z.union([z.string(), z.number()]).superRefine((value, ctx) => {
  const parsed = parseDuration(value);
  if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
});
export type Duration = z.output<typeof durationSchema>;

export function durationMs(value: Duration): number {
  const parsed = parseDuration(value);
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed.ms;
}

const nameSchema = z.string().min(1, 'must not be empty');

// Argo allows IntOrString; fledge takes a whole number either way.
const countSchema = z
  .union([z.number(), z.string().regex(/^\d+$/, 'must be a whole number')])
  .transform((v) => Number(v))
  .pipe(z.number().int().min(1, 'must be at least 1'));

const limitSchema = (fallback: number) => z.number().int().min(0, 'must be 0 or more').default(fallback);

export const prometheusProviderSchema = z.strictObject({
  /** Overrides the controller's Prometheus URL for this metric. */
  address: z.url().optional(),
  query: z.string().trim().min(1, 'query must not be empty'),
  /** Seconds, as in Argo's Prometheus provider. */
  timeout: z.number().positive().optional(),
});

const providerSchema = z
  .object({ prometheus: prometheusProviderSchema.optional() })
  .catchall(z.unknown())
  .superRefine((provider, ctx) => {
    for (const key of Object.keys(provider)) {
      if (key !== 'prometheus') ctx.addIssue({ code: 'custom', path: [key], message: `provider "${key}" is not supported by fledge (use prometheus)` });
    }
    if (!provider.prometheus) ctx.addIssue({ code: 'custom', message: 'a metric needs provider.prometheus' });
  })
  .transform((p) => ({ prometheus: p.prometheus! }));

export const metricActionSchema = z.enum(['rollback', 'pause-for-review']);
export type MetricAction = z.output<typeof metricActionSchema>;

export const metricSchema = z
  .strictObject({
    name: nameSchema,
    provider: providerSchema,
    successCondition: z.string().optional(),
    failureCondition: z.string().optional(),
    interval: durationSchema.optional(),
    initialDelay: durationSchema.optional(),
    count: countSchema.optional(),
    failureLimit: limitSchema(0),
    inconclusiveLimit: limitSchema(0),
    consecutiveErrorLimit: limitSchema(4),
    // fledge additions
    /** What a Failed metric does to the rollout. */
    action: metricActionSchema.default('rollback'),
    /** Fewer samples than this (as counted by samplesQuery) makes a measurement Inconclusive. */
    minSamples: z.number().int().min(1).optional(),
    /** PromQL returning the number of samples behind the measurement (e.g. requests in the window). */
    samplesQuery: z.string().trim().min(1).optional(),
    /** Judge the canary against the stable from both arms' counts (compare.ts). */
    compare: compareSchema.optional(),
  })
  .superRefine((m, ctx) => {
    if ((m.minSamples === undefined) !== (m.samplesQuery === undefined)) {
      ctx.addIssue({ code: 'custom', path: [m.minSamples === undefined ? 'minSamples' : 'samplesQuery'], message: 'minSamples and samplesQuery go together' });
    }
    if (m.compare) {
      const queries = countQueries(m.compare, m.provider.prometheus.query);
      if ('error' in queries) ctx.addIssue({ code: 'custom', path: ['compare'], message: queries.error });
    }
    if (m.count !== undefined && m.count > 1 && m.interval === undefined) {
      ctx.addIssue({ code: 'custom', path: ['interval'], message: 'count > 1 needs an interval between measurements' });
    }
    if (m.count !== undefined && m.count < m.failureLimit) {
      ctx.addIssue({ code: 'custom', path: ['failureLimit'], message: 'failureLimit must not exceed count' });
    }
    if (m.count !== undefined && m.count < m.inconclusiveLimit) {
      ctx.addIssue({ code: 'custom', path: ['inconclusiveLimit'], message: 'inconclusiveLimit must not exceed count' });
    }
  });
export type Metric = z.output<typeof metricSchema>;

export const templateArgSchema = z.strictObject({ name: nameSchema, value: z.string().optional() });

export const analysisTemplateSpecSchema = z.strictObject({
  args: z.array(templateArgSchema).optional(),
  metrics: z.array(metricSchema).min(1, 'an AnalysisTemplate needs at least one metric'),
});

const metadataSchema = z.looseObject({ name: nameSchema });

export const analysisTemplateSchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.enum(['AnalysisTemplate', 'ClusterAnalysisTemplate']).optional(),
  metadata: metadataSchema,
  spec: analysisTemplateSpecSchema,
});
export type AnalysisTemplate = z.output<typeof analysisTemplateSchema>;

export const podTemplateHashValueSchema = z.enum(['Stable', 'Latest']);

export const stepArgSchema = z
  .strictObject({
    name: nameSchema,
    value: z.string().optional(),
    valueFrom: z.strictObject({ podTemplateHashValue: podTemplateHashValueSchema }).optional(),
  })
  .superRefine((arg, ctx) => {
    if ((arg.value === undefined) === (arg.valueFrom === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'an arg needs exactly one of value or valueFrom' });
    }
  });
export type StepArg = z.output<typeof stepArgSchema>;

const analysisStepSchema = z.strictObject({
  templates: z.array(z.strictObject({ templateName: nameSchema, clusterScope: z.boolean().optional() })).min(1, 'list at least one template'),
  args: z.array(stepArgSchema).optional(),
});

/**
 * Argo's background analysis (`spec.strategy.canary.analysis`): the templates run through
 * the whole rollout from step `startingStep` (0-based, as Argo), each metric at its interval.
 */
export const backgroundAnalysisSchema = z.strictObject({
  templates: analysisStepSchema.shape.templates,
  args: analysisStepSchema.shape.args,
  startingStep: z.number().int().min(0, 'must be 0 or more').optional(),
});
export type BackgroundAnalysisSpec = z.output<typeof backgroundAnalysisSchema>;

const shadowStepSchema = z.strictObject({
  duration: durationSchema,
  percent: z.number().min(0).max(100).default(100),
});

/** fledge's data-plane guardrail (controller/policy/guardrail.ts, docs/extproc.md). */
export const guardrailSpecSchema = z
  .strictObject({
    /** Share of the canary's user requests failing (5xx) above which extproc takes it off. */
    errorRate: z.number().gt(0).max(1).optional(),
    /** Share of the canary's evaluated answers judged hallucinated above which extproc takes it off. */
    hallucinationRate: z.number().gt(0).max(1).optional(),
    /** A window with fewer outcomes never trips. */
    minSamples: z.number().int().min(1).default(50),
    /** The latest outcomes per signal the window holds. */
    window: z.number().int().min(1).max(100_000).default(50),
    /** Older outcomes leave the window. */
    maxAge: durationSchema.default('1m'),
    /** How often the controller looks for a trip (divided by the time scale, like every interval). */
    checkInterval: durationSchema.default('5s'),
  })
  .refine((g) => g.errorRate !== undefined || g.hallucinationRate !== undefined, { message: 'a guardrail needs errorRate, hallucinationRate or both' })
  .refine((g) => g.minSamples <= g.window, { message: 'minSamples must not exceed window (it could never be reached)', path: ['minSamples'] });
export type GuardrailSpec = z.output<typeof guardrailSpecSchema>;

const STEP_KINDS = ['setWeight', 'pause', 'analysis', 'shadow'] as const;

export const stepSchema = z
  .strictObject({
    setWeight: z.number().int().min(0).max(100).optional(),
    pause: z.strictObject({ duration: durationSchema.optional() }).optional(),
    analysis: analysisStepSchema.optional(),
    shadow: shadowStepSchema.optional(),
  })
  .superRefine((step, ctx) => {
    const kinds = STEP_KINDS.filter((k) => step[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `a step has exactly one of ${STEP_KINDS.join(', ')}${kinds.length ? ` (found ${kinds.join(' and ')})` : ''}` });
    }
  });
export type Step = z.output<typeof stepSchema>;
export type AnalysisStep = NonNullable<Step['analysis']>;

const stepsSchema = z.array(stepSchema).min(1, 'a policy needs at least one step');

export const fledgePolicySchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.literal('Policy'),
  metadata: metadataSchema,
  spec: z.strictObject({
    steps: stepsSchema,
    /** Background analysis, as an Argo Rollout's spec.strategy.canary.analysis. */
    analysis: backgroundAnalysisSchema.optional(),
    analysisTemplates: z.array(analysisTemplateSchema).optional(),
    /** fledge's data-plane guardrail: hard limits extproc enforces itself. */
    guardrail: guardrailSpecSchema.optional(),
  }),
});

/** An Argo Rollout: only spec.strategy.canary.steps and .analysis are read; everything else is ignored. */
export const argoRolloutSchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.literal('Rollout'),
  metadata: metadataSchema,
  spec: z.looseObject({
    strategy: z.looseObject({
      canary: z.looseObject({ steps: stepsSchema, analysis: backgroundAnalysisSchema.optional() }, { error: 'fledge needs spec.strategy.canary (blueGreen is not supported)' }),
    }),
  }),
});

export const DOCUMENT_KINDS = ['Policy', 'Rollout', 'AnalysisTemplate', 'ClusterAnalysisTemplate'] as const;
