// The built-in shadow-canary policy: the default policy with a shadow stage in front, judged
// by shadow-check on the pairs against the noise floor; loaded like any user policy.
import { describe, expect, it } from 'vitest';
import { describeStep } from '../../controller/policy/policy.js';
import { DEFAULT_MIN_SAMPLES } from '../../controller/policy/default-policy.js';
import { loadBuiltInPolicies, loadDefaultPolicy, loadPolicyCatalog, loadShadowPolicy } from '../../controller/policy/load.js';
import { policyFromConfigMap } from '../../controller/kube/policy-source.js';

describe('the shadow-canary policy', () => {
  const policy = loadShadowPolicy();
  const byDefault = loadDefaultPolicy();

  it('is the default policy with a shadow stage first; its background analysis starts where the default\'s does', () => {
    expect(policy.steps.slice(0, 2).map(describeStep)).toEqual(['shadow 20% for 10m', 'analysis shadow-check']);
    expect(policy.steps.slice(2).map(describeStep)).toEqual(byDefault.steps.map(describeStep));
    expect(policy.background?.startingStep).toBe(byDefault.background!.startingStep + 2);
    expect(policy.steps[policy.background!.startingStep]).toEqual(byDefault.steps[byDefault.background!.startingStep]);
    expect(policy.guardrail).toEqual(byDefault.guardrail);
  });

  it('judges the pairs against the noise floor, the candidate\'s golden-probe quality, and whether answers are captured', () => {
    const step = policy.steps[1]!;
    if (step.kind !== 'analysis') throw new Error('step 1 should be analysis');
    const byName = Object.fromEntries(step.analysis.metrics.map((m) => [m.name, m]));
    expect(Object.keys(byName)).toEqual(['shadow-capture-failures', 'shadow-failures', 'shadow-golden-lost', 'shadow-length-ratio', 'quality-score', 'shadow-guardrail']);
    expect(byName['shadow-capture-failures']!.action).toBe('pause-for-review');
    expect(byName['shadow-failures']!.provider.prometheus.query).toMatch(/pair="candidate".*-.*pair="noise"/s);
    const { 'shadow-guardrail': trip, ...sampled } = byName;
    for (const m of Object.values(sampled)) expect(m).toMatchObject({ minSamples: DEFAULT_MIN_SAMPLES, count: 3, inconclusiveLimit: 2 });
    // A trip needs no samples: it is the guardrail's own verdict on its window.
    expect(trip).toMatchObject({ successCondition: 'result[0] < 1', action: 'rollback' });
    expect(trip!.minSamples).toBeUndefined();
  });

  it('is there beside default in every catalog and ConfigMap lookup; a user file may replace it', () => {
    expect([...loadBuiltInPolicies().keys()]).toEqual(['default', 'shadow-canary']);
    expect(policyFromConfigMap({}, 'cm', 'shadow-canary', loadBuiltInPolicies())).toEqual({ policy: policy });
    const own = loadPolicyCatalog([{ source: 'mine.yaml', text: 'kind: Policy\nmetadata: {name: shadow-canary}\nspec:\n  steps:\n    - setWeight: 50\n' }]);
    expect(own.policies.get('shadow-canary')!.steps.map(describeStep)).toEqual(['setWeight 50']);
    expect(own.policies.get('default')!.steps.map(describeStep)).toEqual(byDefault.steps.map(describeStep));
  });
});
