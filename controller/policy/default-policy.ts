/**
 * The built-in policy `default`: the seed's canary steps and its ai-quality-check template,
 * extended by the seed's rollback table. It is YAML, loaded by the same loader as any user
 * policy, so it is checked by the same rules (and is a worked example of the format).
 *
 * Choices beyond the seed, each for a reason:
 * - Thresholds follow the rollback table's boundaries ("> 1%" rolls back, so exactly 1% passes).
 * - p95 keeps the seed template's absolute ceiling (< 2s) and adds the table's "≤ 2× stable".
 *   It aggregates buckets by `le` so several pods give one quantile, not one per series.
 * - Error and hallucination counts use `or vector(0)`: a healthy canary may never have
 *   incremented those counters, and an absent series must read as 0, not as "no data".
 * - Every metric needs 50 samples in the window; fewer is Inconclusive, never a pass. For
 *   error, latency and cost a sample is a user request; for quality and hallucination it is
 *   an answer an evaluator judged (golden probes, by default: docs/quality.md).
 * - Cost per request (new metric) pauses for review instead of rolling back, as the table says.
 * - Background analysis (Argo's canary.analysis) from the first pause on: the four rollback
 *   metrics every minute (the first one minute in: the canary has barely served before), so a breach that starts at the beginning of a 15m stage rolls back
 *   within about a minute, not at the stage's end (the seed promises a rollback within 2
 *   minutes). Too few samples early in a stage is normal, so its inconclusiveLimit is high
 *   (60: more one-minute measurements than the steps' 40 minutes of pauses take); the
 *   step analyses still decide when evidence is lacking. Cost only gates the steps.
 * - The data-plane guardrail (docs/extproc.md): extproc itself takes the canary off within a
 *   second of a hard breach. Its limits come from the rollback table: the smallest round
 *   share that a version sitting exactly at the table's limit (1% errors, 5% hallucinations)
 *   exceeds in a window of 50 outcomes with probability below 1e-4 (binomial tail; checked in
 *   test/unit/guardrail.test.ts): errors > 10%, hallucinations > 20%. 50 outcomes, as the
 *   analyses' minimum, before anything trips; outcomes older than a minute leave the window.
 */
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { evaluatedSamplesQuery, requestSamplesQuery } from '../analysis/samples.js';
import type { PolicySource } from './load.js';

const CANARY = '{{args.canary-hash}}';
const requests = `sum(rate(inference_requests_total{rollout_hash="${CANARY}"}[10m]))`;
const samples = requestSamplesQuery(CANARY);
/** Quality and hallucination count answers an evaluator judged (golden probes included), not requests. */
const evaluated = evaluatedSamplesQuery(CANARY);
export const DEFAULT_MIN_SAMPLES = 50;
/** How often the background analysis measures. */
export const DEFAULT_BACKGROUND_INTERVAL = '1m';
export const DEFAULT_BACKGROUND_INCONCLUSIVE_LIMIT = 60;

/**
 * The step analyses' comparison with the stable (evidence stages): hallucinations, as counts
 * of judged answers (the rate's own counter is an estimate, not a count), within 3 points of
 * the stable: the evidence bench's margin that promotes 93% of healthy rollouts at 10%
 * sampling (2 points leaves 43% without a decision at the stage cap). Latency is not compared:
 * the seed lets a canary's p95 reach twice the stable's, and a comparison strict enough to
 * decide a stage (canary slower in at most 60% of pairs) rolled healthy demo candidates back
 * on a busy machine's scheduling noise; the threshold stays. Error rate is not compared
 * either: a 0.5-point margin needs ~1,500 canary requests a stage even at zero errors.
 */
export const DEFAULT_COMPARE = { hallucinationMargin: 0.03 } as const;
const compareHallucination = `
            compare:
              margin: ${DEFAULT_COMPARE.hallucinationMargin}
              events: sum(increase(fledge_quality_hallucination_verdicts_total{rollout_hash="${CANARY}"}[10m]))
              trials: sum(increase(fledge_quality_evaluated_total{rollout_hash="${CANARY}"}[10m]))`;

/**
 * The rollback table's metrics, as one template; `extra` is added to each metric (indented
 * YAML lines), `compare` adds the comparison with the stable to hallucination-rate.
 */
function rollbackMetrics(extra: string, compare = false): string {
  return `          - name: error-rate
            provider:
              prometheus:
                query: |
                  (sum(rate(inference_errors_total{rollout_hash="${CANARY}"}[10m])) or vector(0))
                  /
                  ${requests}
            successCondition: result[0] <= 0.01
            action: rollback
            minSamples: ${DEFAULT_MIN_SAMPLES}
            samplesQuery: ${samples}${extra}
          - name: p95-latency
            provider:
              prometheus:
                query: |
                  histogram_quantile(0.95,
                    sum by (le) (rate(inference_latency_seconds_bucket{rollout_hash="${CANARY}"}[10m])))
            successCondition: result[0] < 2.0 && result[0] <= 2 * stable[0]
            action: rollback
            minSamples: ${DEFAULT_MIN_SAMPLES}
            samplesQuery: ${samples}${extra}
          - name: quality-score
            provider:
              prometheus:
                query: |
                  avg(inference_quality_score{rollout_hash="${CANARY}"})
            successCondition: result[0] >= 0.85
            action: rollback
            minSamples: ${DEFAULT_MIN_SAMPLES}
            samplesQuery: ${evaluated}${extra}
          - name: hallucination-rate
            provider:
              prometheus:
                query: |
                  (sum(rate(inference_hallucination_total{rollout_hash="${CANARY}"}[10m])) or vector(0))
                  /
                  ${requests}
            successCondition: result[0] <= 0.05
            action: rollback
            minSamples: ${DEFAULT_MIN_SAMPLES}
            samplesQuery: ${evaluated}${extra}${compare ? compareHallucination : ''}
`;
}

/** A shadow series of the canary's pairs, `pair` = candidate or noise. */
const shadowPairs = (pair: string) => `sum(increase(inference_shadow_pairs_total{rollout_hash="${CANARY}",pair="${pair}"}[10m]))`;
/**
 * The share of a kind's pairs whose second answer gained (or lost) a property; 0 when no pair
 * had the feature (a service whose traffic has no golden question: its series exist at 0, and
 * 0/0 would be NaN, which fails any condition). Flips never exceed the pairs compared, so
 * dividing by at least 1 changes no share that has a pair behind it.
 */
function flipShare(pair: string, feature: string, direction: string): string {
  const where = `rollout_hash="${CANARY}",pair="${pair}",feature="${feature}"`;
  return `((sum(increase(inference_shadow_flips_total{${where},direction="${direction}"}[10m])) or vector(0)) / clamp_min(sum(increase(inference_shadow_compared_total{${where}}[10m])) or vector(0), 1))`;
}
/** The candidate's share minus the noise floor's: what the candidate changes beyond the stable's own variation. */
const flipExcess = (feature: string, direction: string) => `${flipShare('candidate', feature, direction)} - ${flipShare('noise', feature, direction)}`;

/**
 * shadow-check measures every minute, three times: the copies go on meanwhile, so a stage
 * whose first look has too few pairs (a quiet service, a slow start) gets two more before it
 * pauses; a failed look rolls back at once.
 */
const SHADOW_CADENCE = `            interval: 1m
            count: 3
            inconclusiveLimit: 2
`;

/** One shadow-check metric: measured at SHADOW_CADENCE, on `samples` when it needs a minimum. */
function shadowMetric(name: string, query: string, condition: string, action: 'rollback' | 'pause-for-review', samples?: string): string {
  const minimum = samples === undefined ? '' : `            minSamples: ${DEFAULT_MIN_SAMPLES}\n`;
  const samplesLine = samples === undefined ? '' : `            samplesQuery: ${samples}\n`;
  return `          - name: ${name}
            provider:
              prometheus:
                query: |
${query.replace(/^/gm, '                  ')}
            successCondition: ${condition}
            action: ${action}
${minimum}${SHADOW_CADENCE}${samplesLine}`;
}

const captures = `sum(increase(inference_shadow_captures_total{rollout_hash="${CANARY}"}[10m]))`;
const SHADOW_TEMPLATE = [
  shadowMetric(
    'shadow-capture-failures',
    `(sum(increase(inference_shadow_captures_total{rollout_hash="${CANARY}",outcome=~"store-error|unavailable|unpinned"}[10m])) or vector(0))\n/\n${captures}`,
    'result[0] <= 0.1',
    'pause-for-review',
    captures,
  ),
  shadowMetric('shadow-failures', flipExcess('failed', 'gained'), 'result[0] <= 0.02', 'rollback', shadowPairs('candidate')),
  shadowMetric('shadow-golden-lost', flipExcess('golden-correct', 'lost'), 'result[0] <= 0.1', 'rollback', shadowPairs('candidate')),
  shadowMetric(
    'shadow-length-ratio',
    `histogram_quantile(0.5, sum by (le) (rate(inference_shadow_length_ratio_bucket{rollout_hash="${CANARY}",pair="candidate"}[10m])))`,
    'result[0] >= 0.67 && result[0] <= 1.5',
    'rollback',
    shadowPairs('candidate'),
  ),
  shadowMetric('quality-score', `avg(inference_quality_score{rollout_hash="${CANARY}"})`, 'result[0] >= 0.85', 'rollback', evaluated),
  // A trip needs no samples: it is the guardrail's own verdict on its window.
  shadowMetric('shadow-guardrail', `max(fledge_guardrail_tripped{rollout_hash="${CANARY}"}) or vector(0)`, 'result[0] < 1', 'rollback'),
].join('');

export const DEFAULT_POLICY_NAME = 'default';
/** The guardrail's hard limits (see the derivation above). */
export const DEFAULT_GUARDRAIL = { errorRate: 0.1, hallucinationRate: 0.2, minSamples: 50, window: 50, maxAge: '1m', checkInterval: '5s' } as const;

export const DEFAULT_POLICY_YAML = `# fledge's default policy: the seed's steps and ai-quality-check, plus the rollback table.
apiVersion: fledge.dev/v1alpha1
kind: Policy
metadata:
  name: ${DEFAULT_POLICY_NAME}
spec:
  steps:
    - setWeight: 5
    - pause: {duration: 10m}
    - analysis:
        templates:
          - templateName: ai-quality-check
        args:
          - name: canary-hash
            valueFrom:
              podTemplateHashValue: Latest
    - setWeight: 25
    - pause: {duration: 15m}
    - analysis:
        templates:
          - templateName: ai-quality-check
    - setWeight: 50
    - pause: {duration: 15m}
    - analysis:
        templates:
          - templateName: ai-quality-check
    - setWeight: 100
  analysis:
    templates:
      - templateName: ai-quality-guard
    args:
      - name: canary-hash
        valueFrom:
          podTemplateHashValue: Latest
    startingStep: 1
  guardrail:
    errorRate: ${DEFAULT_GUARDRAIL.errorRate}
    hallucinationRate: ${DEFAULT_GUARDRAIL.hallucinationRate}
    minSamples: ${DEFAULT_GUARDRAIL.minSamples}
    window: ${DEFAULT_GUARDRAIL.window}
    maxAge: ${DEFAULT_GUARDRAIL.maxAge}
    checkInterval: ${DEFAULT_GUARDRAIL.checkInterval}
  analysisTemplates:
    - apiVersion: argoproj.io/v1alpha1
      kind: AnalysisTemplate
      metadata:
        name: ai-quality-check
      spec:
        metrics:
${rollbackMetrics('', true)}          - name: cost-per-request
            provider:
              prometheus:
                query: |
                  sum(rate(inference_cost_total{rollout_hash="${CANARY}"}[10m]))
                  /
                  ${requests}
            successCondition: result[0] <= 1.5 * stable[0]
            action: pause-for-review
            minSamples: ${DEFAULT_MIN_SAMPLES}
            samplesQuery: ${samples}
    - apiVersion: argoproj.io/v1alpha1
      kind: AnalysisTemplate
      metadata:
        name: ai-quality-guard
      spec:
        metrics:
${rollbackMetrics(`
            initialDelay: ${DEFAULT_BACKGROUND_INTERVAL}
            interval: ${DEFAULT_BACKGROUND_INTERVAL}
            inconclusiveLimit: ${DEFAULT_BACKGROUND_INCONCLUSIVE_LIMIT}`)}`;

export function defaultPolicyEntry(): PolicySource {
  return { source: 'built-in default policy', text: DEFAULT_POLICY_YAML };
}

export const SHADOW_POLICY_NAME = 'shadow-canary';
export const SHADOW_STEP = { duration: '10m', percent: 20 } as const;

/**
 * The built-in `shadow-canary` policy: the default policy with a shadow stage in front
 * (docs/shadow.md). 20% of the stable's requests are copied to the candidate for 10 minutes
 * (no user sees it), then shadow-check judges the pairs while the copies go on: the
 * candidate's answers must not fail more often, lose golden answers more often, or differ in
 * length more than the stable's own second answers do (the noise floor); its golden-probe
 * quality must hold; and if answers are not being captured (Redis down, capture not
 * configured) the rollout waits for review rather than moving on. Everything after is the
 * default policy's, unchanged (its background analysis starts at the same step as there).
 * The data-plane guardrail judges the golden probes' verdicts during shadow too: a candidate
 * it takes off (no more copies go to it then) is rolled back by shadow-check's
 * shadow-guardrail at its first look.
 */
export function shadowPolicyYaml(): string {
  const policy = parseYaml(DEFAULT_POLICY_YAML) as {
    metadata: { name: string };
    spec: { steps: unknown[]; analysis?: { startingStep?: number }; analysisTemplates: unknown[] };
  };
  const shadowStage = [
    { shadow: { ...SHADOW_STEP } },
    { analysis: { templates: [{ templateName: 'shadow-check' }], args: [{ name: 'canary-hash', valueFrom: { podTemplateHashValue: 'Latest' } }] } },
  ];
  policy.metadata.name = SHADOW_POLICY_NAME;
  policy.spec.steps.unshift(...shadowStage);
  if (policy.spec.analysis?.startingStep !== undefined) policy.spec.analysis.startingStep += shadowStage.length;
  policy.spec.analysisTemplates.unshift(parseYaml(`apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: shadow-check
spec:
  metrics:
${SHADOW_TEMPLATE.replace(/^ {8}/gm, '  ')}`));
  return `# fledge's shadow-canary policy: a shadow stage, then the default policy.\n${toYaml(policy, { lineWidth: 0 })}`;
}

/** Every built-in policy, by name; a source that defines the same name replaces it. */
export function builtInPolicyEntries(): PolicySource[] {
  return [defaultPolicyEntry(), { source: 'built-in shadow-canary policy', text: shadowPolicyYaml() }];
}
