import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config-error.js';
import { DEFAULT_MIN_SAMPLES } from '../../controller/policy/default-policy.js';
import { loadDefaultPolicy, loadPolicyCatalog, loadPolicyFiles, loadPolicyText } from '../../controller/policy/load.js';
import { describeStep } from '../../controller/policy/policy.js';

const seed = (name: string) => fileURLToPath(new URL(`../fixtures/seed/${name}`, import.meta.url));
const SEED_ROLLOUT = seed('rollout.yaml');
const SEED_TEMPLATE = seed('analysis-template.yaml');

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const template = (metric: string) => `
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  metrics:
${metric}
`;

describe('seed files load verbatim', () => {
  it('rollout.yaml + analysis-template.yaml give the seed steps with the four metrics', () => {
    const catalog = loadPolicyFiles([SEED_ROLLOUT, SEED_TEMPLATE]);
    const policy = catalog.policies.get('inference-service')!;
    expect(policy.steps.map(describeStep)).toEqual([
      'setWeight 5',
      'pause 10m',
      'analysis ai-quality-check',
      'setWeight 25',
      'pause 15m',
      'analysis ai-quality-check',
      'setWeight 50',
      'pause 15m',
      'analysis ai-quality-check',
      'setWeight 100',
    ]);
    const analysis = policy.steps[2]!;
    if (analysis.kind !== 'analysis') throw new Error('step 2 should be analysis');
    expect(analysis.analysis.metrics.map((m) => m.name)).toEqual(['error-rate', 'p95-latency', 'quality-score', 'hallucination-rate']);
    expect(analysis.analysis.args).toContainEqual({ name: 'canary-hash', fromHash: 'Latest' });
    // Argo defaults
    expect(analysis.analysis.metrics[0]).toMatchObject({ failureLimit: 0, inconclusiveLimit: 0, consecutiveErrorLimit: 4, action: 'rollback' });
    const pause = policy.steps[1]!;
    expect(pause.kind === 'pause' && pause.durationMs).toBe(600_000);
    // The built-in default is added beside it.
    expect([...catalog.policies.keys()].sort()).toEqual(['default', 'inference-service', 'shadow-canary']);
  });

  it('the same texts as one multi-document YAML load too', () => {
    const text = `${readFileSync(SEED_ROLLOUT, 'utf8')}\n---\n${readFileSync(SEED_TEMPLATE, 'utf8')}`;
    const catalog = loadPolicyText(text, 'bundle.yaml');
    expect([...catalog.policies.keys()]).toEqual(['inference-service']);
    expect([...catalog.templates.keys()]).toEqual(['ai-quality-check']);
  });

  it('rollout.yaml alone names the missing template, with file and path', () => {
    const err = configError(() => loadPolicyFiles([SEED_ROLLOUT], { includeDefault: false }));
    expect(err.source).toBe(SEED_ROLLOUT);
    expect(err.problems[0]!.path).toBe('spec.strategy.canary.steps[2].analysis.templates[0].templateName');
    expect(err.problems[0]!.message).toContain('"ai-quality-check" not found');
  });

  it('a ConfigMap key can name the policy it holds', () => {
    const catalog = loadPolicyCatalog([
      { source: 'fledge-policies/seed', name: 'seed', text: readFileSync(SEED_ROLLOUT, 'utf8') },
      { source: 'fledge-policies/ai-quality-check', text: readFileSync(SEED_TEMPLATE, 'utf8') },
    ]);
    expect(catalog.policies.has('seed')).toBe(true);
    expect(catalog.policies.has('inference-service')).toBe(false);
  });
});

describe('the default policy', () => {
  const policy = loadDefaultPolicy();

  it('has the seed steps', () => {
    expect(policy.steps.map(describeStep)).toEqual(loadPolicyFiles([SEED_ROLLOUT, SEED_TEMPLATE]).policies.get('inference-service')!.steps.map(describeStep));
  });

  it('extends ai-quality-check with the rollback table', () => {
    const step = policy.steps[2]!;
    if (step.kind !== 'analysis') throw new Error('step 2 should be analysis');
    const byName = Object.fromEntries(step.analysis.metrics.map((m) => [m.name, m]));
    expect(Object.keys(byName)).toEqual(['error-rate', 'p95-latency', 'quality-score', 'hallucination-rate', 'cost-per-request']);
    expect(byName['cost-per-request']!.action).toBe('pause-for-review');
    expect(byName['cost-per-request']!.provider.prometheus.query).toContain('inference_cost_total');
    expect(byName['p95-latency']!.successCondition).toContain('2 * stable[0]');
    for (const m of Object.values(byName)) expect(m.minSamples).toBe(DEFAULT_MIN_SAMPLES);
  });

  it('runs the rollback metrics as background analysis every minute from the first pause', () => {
    expect(policy.background?.startingStep).toBe(1);
    expect(policy.steps[1]).toMatchObject({ kind: 'pause', duration: '10m' });
    const metrics = policy.background!.analysis.metrics;
    expect(metrics.map((m) => m.name)).toEqual(['error-rate', 'p95-latency', 'quality-score', 'hallucination-rate', 'guardrail']);
    for (const m of metrics.slice(0, 4)) expect(m).toMatchObject({ interval: '1m', initialDelay: '1m', action: 'rollback', minSamples: DEFAULT_MIN_SAMPLES, failureLimit: 0 });
    expect(policy.background!.analysis.args).toContainEqual({ name: 'canary-hash', fromHash: 'Latest' });
  });

  it('a user policy named default replaces the built-in one', () => {
    const catalog = loadPolicyCatalog([{ source: 'mine.yaml', text: 'kind: Policy\nmetadata: {name: default}\nspec:\n  steps:\n    - setWeight: 100\n' }]);
    expect(catalog.policies.get('default')!.steps).toEqual([{ kind: 'setWeight', weight: 100 }]);
  });
});

describe('bad policies are reported with file, path and reason', () => {
  it('an unknown step kind', () => {
    const err = configError(() => loadPolicyText('kind: Policy\nmetadata: {name: p}\nspec:\n  steps:\n    - setWeight: 5\n    - experiment: {}\n', 'p.yaml'));
    expect(err.source).toBe('p.yaml');
    expect(err.problems.map((p) => p.path)).toContain('spec.steps[1]');
  });

  it('a step with two kinds', () => {
    const err = configError(() => loadPolicyText('kind: Policy\nmetadata: {name: p}\nspec:\n  steps:\n    - {setWeight: 5, pause: {}}\n', 'p.yaml'));
    expect(err.problems[0]).toMatchObject({ path: 'spec.steps[0]' });
    expect(err.problems[0]!.message).toContain('exactly one');
  });

  it('a weight over 100 and a bad duration, both in one report', () => {
    const err = configError(() => loadPolicyText('kind: Policy\nmetadata: {name: p}\nspec:\n  steps:\n    - setWeight: 150\n    - pause: {duration: 10 minutes}\n', 'p.yaml'));
    expect(err.problems.map((p) => p.path)).toEqual(['spec.steps[0].setWeight', 'spec.steps[1].pause.duration']);
    expect(err.message).toContain('is not a duration');
  });

  it('a misspelt metric field is rejected, not ignored', () => {
    const text = template('    - name: m\n      sucessCondition: result[0] < 1\n      provider: {prometheus: {query: up}}');
    const err = configError(() => loadPolicyText(text, 't.yaml'));
    expect(err.problems[0]!.path).toBe('spec.metrics[0]');
    expect(err.problems[0]!.message).toContain('sucessCondition');
  });

  it('an unsupported provider', () => {
    const err = configError(() => loadPolicyText(template('    - name: m\n      provider: {web: {url: "http://x"}}'), 't.yaml'));
    expect(err.problems.map((p) => p.path)).toContain('spec.metrics[0].provider.web');
  });

  it('an invalid condition names the metric', () => {
    const err = configError(() => loadPolicyText(template('    - name: latency\n      successCondition: result[0] <\n      provider: {prometheus: {query: up}}'), 't.yaml'));
    expect(err.problems[0]!.path).toBe('spec.metrics[0].successCondition');
    expect(err.problems[0]!.message).toContain('metric latency');
  });

  it('minSamples without samplesQuery', () => {
    const err = configError(() => loadPolicyText(template('    - name: m\n      minSamples: 10\n      provider: {prometheus: {query: up}}'), 't.yaml'));
    expect(err.problems[0]!.path).toBe('spec.metrics[0].samplesQuery');
  });

  it('an arg with no value, in a multi-document file', () => {
    const text = `kind: Rollout
metadata: {name: r}
spec: {strategy: {canary: {steps: [{analysis: {templates: [{templateName: t}]}}]}}}
---
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args: [{name: service}]
  metrics:
    - name: m
      successCondition: result[0] > 0
      provider: {prometheus: {query: 'up{service="{{args.service}}"}'}}
`;
    const err = configError(() => loadPolicyText(text, 'multi.yaml'));
    expect(err.problems[0]!.path).toBe('documents[0].spec.strategy.canary.steps[0].analysis');
    expect(err.problems[0]!.message).toContain('{{args.service}} is declared but given no value');
  });

  it('a baseline condition whose query has no canary hash to swap', () => {
    const text = `kind: Policy
metadata: {name: p}
spec:
  steps: [{analysis: {templates: [{templateName: t}]}}]
  analysisTemplates:
    - metadata: {name: t}
      spec:
        metrics:
          - name: latency
            successCondition: result[0] < 2 * stable[0]
            provider: {prometheus: {query: 'up{job="model"}'}}
`;
    const err = configError(() => loadPolicyText(text, 'p.yaml'));
    expect(err.problems[0]!.path).toBe('spec.steps[0].analysis');
    expect(err.problems[0]!.message).toMatch(/metric latency: .*stable/);
  });

  it('a metric with an interval and no count in an analysis step', () => {
    const text = `kind: Policy
metadata: {name: p}
spec:
  steps: [{analysis: {templates: [{templateName: t}]}}]
  analysisTemplates:
    - metadata: {name: t}
      spec:
        metrics:
          - {name: m, interval: 1m, successCondition: 'result[0] > 0', provider: {prometheus: {query: up}}}
`;
    expect(configError(() => loadPolicyText(text, 'p.yaml')).message).toContain('run forever');
  });

  it('background analysis: a metric may run until the rollout ends; startingStep must name a step', () => {
    const text = (startingStep: number) => `kind: Policy
metadata: {name: p}
spec:
  steps: [{setWeight: 10}, {pause: {duration: 1m}}, {setWeight: 100}]
  analysis: {templates: [{templateName: t}], startingStep: ${startingStep}}
  analysisTemplates:
    - metadata: {name: t}
      spec:
        metrics:
          - {name: m, interval: 1m, successCondition: 'result[0] > 0', provider: {prometheus: {query: up}}}
`;
    expect(loadPolicyText(text(2), 'p.yaml').policies.get('p')!.background).toMatchObject({ startingStep: 2, analysis: { templateNames: ['t'] } });
    const err = configError(() => loadPolicyText(text(3), 'p.yaml'));
    expect(err.problems[0]).toMatchObject({ path: 'spec.analysis.startingStep', message: 'must be less than the number of steps (3); steps are counted from 0' });
    const missing = configError(() => loadPolicyText(text(0).replace('templateName: t}', 'templateName: nope}'), 'p.yaml'));
    expect(missing.problems[0]!.path).toBe('spec.analysis.templates[0].templateName');
  });

  it('an unknown document kind and broken YAML', () => {
    expect(configError(() => loadPolicyText('kind: Deployment\nmetadata: {name: x}\n', 'd.yaml')).problems[0]).toMatchObject({ path: 'kind' });
    expect(configError(() => loadPolicyText('kind: [Policy\n', 'bad.yaml')).message).toContain('not valid YAML');
  });

  it('problems in two sources name each source', () => {
    const err = configError(() =>
      loadPolicyCatalog(
        [
          { source: 'a.yaml', text: 'kind: Policy\nmetadata: {name: a}\nspec: {steps: [{setWeight: -1}]}\n' },
          { source: 'b.yaml', text: 'kind: Policy\nmetadata: {name: b}\nspec: {steps: []}\n' },
        ],
        { includeDefault: false },
      ),
    );
    expect(err.problems.map((p) => p.path)).toEqual(['a.yaml: spec.steps[0].setWeight', 'b.yaml: spec.steps']);
  });
});

describe('conditions never execute code', () => {
  for (const condition of ['process.exit(1)', 'constructor.constructor("return process")()', 'result.constructor', 'result["constructor"]', 'require("fs")']) {
    it(`"${condition}" is a load error`, () => {
      const err = configError(() => loadPolicyText(template(`    - name: evil\n      successCondition: '${condition.replace(/'/g, "''")}'\n      provider: {prometheus: {query: up}}`), 't.yaml'));
      expect(err.problems[0]!.path).toBe('spec.metrics[0].successCondition');
      expect(err.problems[0]!.message).toContain('metric evil');
    });
  }
});
