import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { policyFromConfigMap } from '../../controller/kube/policy-source.js';
import { deploymentFingerprint, parseAction, parseStatus, serializeStatus, toStatus } from '../../controller/kube/rollout-status.js';
import { ReconcileQueue } from '../../controller/reconcile/work-queue.js';
import { startRollout } from '../../controller/engine/rollout-machine.js';
import { loadBuiltInPolicies, loadDefaultPolicy } from '../../controller/policy/load.js';
import { applyShadow, applyPromotion, applyWeight, currentWeight, subsetForPodLabels, weightedRouteIndex, weightedRouteProblem, type DestinationRule, type VirtualService } from '../../controller/traffic/istio/virtual-service.js';
import { renderTable, stepBar, summarizeAnalysis, viewOf } from '../../cli/rollout-view.js';

const seed = (name: string) => readFileSync(new URL(`../fixtures/seed/${name}`, import.meta.url), 'utf8');
const subsets = { stable: 'v1', canary: 'v2' };

function vs(): VirtualService {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'model', namespace: 'ns' },
    spec: {
      hosts: ['model'],
      http: [
        { name: 'pinned-v2', match: [{ headers: { 'x-fledge-version': { exact: 'v2' } } }], route: [{ destination: { host: 'model', subset: 'v2' } }] },
        { name: 'weighted', retries: { attempts: 3 }, route: [{ destination: { host: 'model', subset: 'v1' }, weight: 100 }, { destination: { host: 'model', subset: 'v2' }, weight: 0 }] },
      ],
    },
  };
}

describe('Istio VirtualService weights', () => {
  it('the weighted route is the one with both subsets, not a header route', () => {
    expect(weightedRouteIndex(vs(), subsets)).toBe(1);
    expect(weightedRouteProblem(vs(), { stable: 'v1', canary: 'v3' })).toMatch(/VirtualService ns\/model has no http route with destinations for both subsets "v1" \(stable\) and "v3" \(canary\)/);
  });

  it('applyWeight gives the canary its weight and stable the rest, leaving everything else alone', () => {
    const v = vs();
    expect(applyWeight(v, subsets, 25)).toBe(true);
    expect(v.spec.http?.[1]?.route?.map((r) => r.weight)).toEqual([75, 25]);
    expect(v.spec.http?.[1]?.['retries']).toEqual({ attempts: 3 });
    expect(v.spec.http?.[0]).toEqual(vs().spec.http?.[0]);
    expect(currentWeight(v, subsets)).toBe(25);
    expect(applyWeight(v, subsets, 25)).toBe(false);
  });

  it('applyPromotion makes the candidate the stable subset: 100% on it, no canary annotation, only its hash', () => {
    const v = vs();
    v.metadata!.annotations = { 'fledge.dev/canary-subset': 'v2', 'fledge.dev/stable-subset': 'v1', 'fledge.dev/rollout-hashes': '{"v1":"aaa","v2":"bbb"}', 'other/keep': 'x' };
    v.spec.http![1]!.mirror = { host: 'model', subset: 'v2' };
    expect(applyPromotion(v, subsets, { canaryHash: 'bbb', stableHash: 'aaa' })).toBe(true);
    expect(v.spec.http?.[1]?.route?.map((r) => r.weight)).toEqual([0, 100]);
    expect(v.spec.http?.[1]?.mirror).toBeUndefined();
    expect(v.metadata?.annotations).toEqual({ 'fledge.dev/stable-subset': 'v2', 'fledge.dev/rollout-hashes': '{"v2":"bbb"}', 'other/keep': 'x' });
    expect(v.spec.http?.[0]).toEqual(vs().spec.http?.[0]);
    expect(applyPromotion(v, subsets, { canaryHash: 'bbb', stableHash: 'aaa' })).toBe(false);
  });

  it('applyShadow sets the shadow share for extproc (never an Istio mirror, whose answers nobody sees) and removes it at 0', () => {
    const v = vs();
    v.spec.http![1]!.mirror = { host: 'model', subset: 'v2' };
    v.spec.http![1]!.mirrorPercentage = { value: 10 };
    expect(applyShadow(v, subsets, 50)).toBe(true);
    expect(v.metadata?.annotations?.['fledge.dev/shadow-percent']).toBe('50');
    expect(v.spec.http?.[1]?.mirror).toBeUndefined();
    expect(v.spec.http?.[1]?.mirrorPercentage).toBeUndefined();
    expect(applyShadow(v, subsets, 50)).toBe(false);
    expect(applyShadow(v, subsets, 0)).toBe(true);
    expect(v.metadata?.annotations?.['fledge.dev/shadow-percent']).toBeUndefined();
    expect(applyShadow(v, subsets, 0)).toBe(false);
  });

  it('subsets are matched on all their labels', () => {
    const dr: DestinationRule = { spec: { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2', app: 'model' } }, { name: 'all', labels: {} }] } };
    expect(subsetForPodLabels(dr, { version: 'v2', app: 'model' })).toEqual(['v2']);
    expect(subsetForPodLabels(dr, { version: 'v2' })).toEqual([]);
  });
});

describe('policies from the fledge-policies ConfigMap', () => {
  const builtIn = loadBuiltInPolicies();
  it('a key holds a Rollout; AnalysisTemplates may live in other keys', () => {
    const found = policyFromConfigMap({ seed: seed('rollout.yaml'), templates: seed('analysis-template.yaml') }, 'ConfigMap ns/fledge-policies', 'seed', builtIn);
    expect('policy' in found && found.policy.steps.map((s) => s.kind)).toEqual(['setWeight', 'pause', 'analysis', 'setWeight', 'pause', 'analysis', 'setWeight', 'pause', 'analysis', 'setWeight']);
  });

  it('default falls back to the built-in policy; other missing names are a problem', () => {
    expect(policyFromConfigMap({}, 'cm', 'default', builtIn)).toEqual({ policy: builtIn.get('default') });
    expect(policyFromConfigMap({ a: 'x' }, 'cm', 'b', builtIn)).toEqual({ problem: 'policy "b" not found: cm has no key "b" (keys: a)' });
  });

  it('a malformed policy names its key and the problem', () => {
    const found = policyFromConfigMap({ p: 'kind: Rollout\nmetadata: {name: p}\nspec: {strategy: {canary: {steps: [{setWeight: 500}]}}}\n' }, 'ConfigMap ns/fledge-policies', 'p', builtIn);
    expect('problem' in found && found.problem).toMatch(/^malformed policy: ConfigMap ns\/fledge-policies key "p": .*setWeight/);
  });
});

describe('status annotation', () => {
  it('round-trips with the summary fields and the target', () => {
    const state = startRollout(loadDefaultPolicy(), 1_000).state;
    const status = toStatus(state, 10, { virtualService: 'model', stableSubset: 'v1', canarySubset: 'v2', canaryHash: 'c', stableHash: 's' });
    expect(status).toMatchObject({ step: 2, steps: 10, weight: 5, phase: 'Progressing' });
    expect(parseStatus(serializeStatus(status))).toEqual(status);
  });

  it('actions are parsed strictly', () => {
    expect(parseAction(' Promote ')).toBe('promote');
    expect(parseAction('restart')).toBeUndefined();
  });

  it('the fingerprint ignores our own status but not other annotations or the template', () => {
    const d = { metadata: { annotations: { 'fledge.dev/virtual-service': 'm', 'fledge.dev/status': 'a' } }, spec: { template: { metadata: { labels: { v: '1' } } } } };
    const same = { ...d, metadata: { annotations: { ...d.metadata.annotations, 'fledge.dev/status': 'b' } } };
    const acted = { ...d, metadata: { annotations: { ...d.metadata.annotations, 'fledge.dev/action': 'abort' } } };
    expect(deploymentFingerprint(same)).toBe(deploymentFingerprint(d));
    expect(deploymentFingerprint(acted)).not.toBe(deploymentFingerprint(d));
  });
});

describe('reconcile queue', () => {
  it('never runs a key twice at once; a change during a run runs it once more', async () => {
    const running = new Set<string>();
    const runs: string[] = [];
    let overlap = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const queue = new ReconcileQueue<void>(
      async (key) => {
        if (running.has(key)) overlap = true;
        running.add(key);
        runs.push(key);
        if (runs.length === 1) await gate;
        running.delete(key);
      },
      { concurrency: 4, nextRunAt: () => undefined, onError: () => undefined },
    );
    queue.enqueue('a');
    queue.enqueue('a');
    queue.enqueue('a');
    release();
    await new Promise<void>((resolve) => {
      const check = () => (queue.size === 0 && runs.length >= 2 ? resolve() : setTimeout(check, 5));
      check();
    });
    expect(overlap).toBe(false);
    expect(runs).toEqual(['a', 'a']);
    await queue.stop();
  });

  it('runs a key again at the time its reconcile asked for, and backs off after an error', async () => {
    const times: number[] = [];
    let first = true;
    const start = Date.now();
    const errors: number[] = [];
    await new Promise<void>((resolve) => {
      const queue = new ReconcileQueue<number | undefined>(
        async () => {
          times.push(Date.now() - start);
          if (times.length === 2) throw new Error('boom');
          if (times.length === 3) {
            resolve();
            void queue.stop();
          }
          const at = first ? Date.now() + 100 : undefined;
          first = false;
          return at;
        },
        { concurrency: 1, nextRunAt: (_k, at) => at, onError: (_k, _e, attempt) => errors.push(attempt) },
      );
      queue.enqueue('k');
    });
    expect(times[1]).toBeGreaterThanOrEqual(95);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(200); // first back-off is 250 ms
    expect(errors).toEqual([1]);
  });
});

describe('fledge status view', () => {
  it('summarises a rolled-back rollout', () => {
    const status = {
      ...startRollout(loadDefaultPolicy(), 0).state,
      phase: 'RolledBack' as const,
      weight: 0,
      message: 'metric error-rate failed',
      step: 3,
      steps: 10,
      analysis: { startedAt: 0, phase: 'Failed' as const, metrics: [{ name: 'error-rate', phase: 'Failed' as const, count: 1, successful: 0, failed: 1, inconclusive: 0, error: 0, consecutiveError: 0, measurements: [{ phase: 'Failed' as const, startedAt: 0, finishedAt: 1, value: [0.02] }] }] },
    };
    const view = viewOf({ metadata: { name: 'model-v2', namespace: 'ns', annotations: { 'fledge.dev/virtual-service': 'model', 'fledge.dev/status': serializeStatus(status) } } });
    expect(view).toMatchObject({ rollout: 'model-v2', phase: 'RolledBack', step: '3/10', weight: 0, analysis: 'Failed: error-rate=0.02' });
    expect(summarizeAnalysis(undefined)).toBe('-');
    const table = renderTable([view], false).split('\n');
    expect(table[0]).toMatch(/^ROLLOUT\s+PHASE\s+PROGRESS\s+STEP\s+WEIGHT\s+ANALYSIS\s+MESSAGE$/);
    expect(table[1]).toMatch(/^model-v2\s+RolledBack\s+\[#*-*\]\s+3\/10\s+0%\s+Failed: error-rate=0.02\s+metric error-rate failed$/);
    // Two of ten steps done (stepIndex 2): a fifth of the bar; a promoted rollout's bar is full.
    expect(stepBar({ ...status, stepIndex: 2 })).toBe('[##--------]');
    expect(stepBar({ ...status, phase: 'Promoted', stepIndex: 10 })).toBe('[##########]');
  });

  it('marks the weight by what the proxies confirmed (weightVerified): live, unconfirmed, or unmarked when not checked', () => {
    const base = { ...startRollout(loadDefaultPolicy(), 0).state, phase: 'Progressing' as const, weight: 25, message: 'step 4/10', step: 4, steps: 10 };
    const row = (weightVerified?: { weight: number; verified: boolean; ms: number; at: number }) =>
      renderTable([viewOf({ metadata: { name: 'model-v2', namespace: 'ns', annotations: { 'fledge.dev/virtual-service': 'model', 'fledge.dev/status': serializeStatus({ ...base, ...(weightVerified ? { weightVerified } : {}) }) } } })], false).split('\n')[1];
    expect(row({ weight: 25, verified: true, ms: 130, at: 1 })).toMatch(/\s4\/10\s+25% live\s/);
    expect(row({ weight: 25, verified: false, ms: 10_000, at: 1 })).toMatch(/\s4\/10\s+25% unconfirmed\s/);
    // Not checked, or checked for an earlier weight: the weight alone.
    expect(row()).toMatch(/\s4\/10\s+25%\s+-/);
    expect(row({ weight: 5, verified: true, ms: 130, at: 1 })).toMatch(/\s4\/10\s+25%\s+-/);
  });
});
