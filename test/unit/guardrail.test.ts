import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config-error.js';
import { loadDefaultPolicy, loadPolicyCatalog, loadPolicyFiles, loadPolicyText } from '../../controller/policy/load.js';
import { DEFAULT_GUARDRAIL } from '../../controller/policy/default-policy.js';
import { decideVersion } from '../../extproc/decision.js';
import { Guardrail, type Trip } from '../../extproc/guardrail/guardrail.js';
import { guardrailThresholdsSchema, type GuardrailThresholds } from '../../extproc/guardrail/thresholds.js';
import { breached, OutcomeWindow } from '../../extproc/guardrail/window.js';
import { parseRoutingFile, type ServiceRouting } from '../../extproc/routing/state.js';
import { fileURLToPath } from 'node:url';

const LIMITS: GuardrailThresholds = { errorRate: 0.1, hallucinationRate: 0.2, minSamples: 50, window: 50, maxAgeSeconds: 60 };

describe('OutcomeWindow and breached', () => {
  it('keeps only the last `size` outcomes', () => {
    const w = new OutcomeWindow(10);
    for (let i = 0; i < 10; i++) w.add(true, 1000);
    for (let i = 0; i < 7; i++) w.add(false, 1000);
    expect(w.counts(1000, 60_000)).toEqual({ n: 10, bad: 3 });
  });

  it('drops outcomes older than maxAge', () => {
    const w = new OutcomeWindow(10);
    w.add(true, 0);
    w.add(true, 0);
    w.add(false, 50_000);
    expect(w.counts(61_000, 60_000)).toEqual({ n: 1, bad: 0 });
    expect(w.counts(50_000, 60_000)).toEqual({ n: 3, bad: 2 });
  });

  it('never trips below minSamples, and only strictly above the limit', () => {
    expect(breached({ n: 49, bad: 49 }, 0.1, 50)).toBe(false);
    expect(breached({ n: 50, bad: 5 }, 0.1, 50)).toBe(false);
    expect(breached({ n: 50, bad: 6 }, 0.1, 50)).toBe(true);
  });
});

/** P(X >= k) for X ~ Binomial(n, p). */
function binomialTail(n: number, p: number, k: number): number {
  let sum = 0;
  let term = Math.pow(1 - p, n); // P(X = 0)
  for (let i = 0; i <= n; i++) {
    if (i >= k) sum += term;
    term = (term * (n - i) * p) / ((i + 1) * (1 - p));
  }
  return sum;
}

describe('the default guardrail limits, from the seed rollback table', () => {
  // The table: error rate > 1% and hallucination rate > 5% roll back. A version exactly at
  // those limits must (almost) never trip the hard guardrail in a full window; one well past
  // them must trip it.
  const cases = [
    { signal: 'errors', table: 0.01, limit: DEFAULT_GUARDRAIL.errorRate },
    { signal: 'hallucinations', table: 0.05, limit: DEFAULT_GUARDRAIL.hallucinationRate },
  ] as const;
  for (const { signal, table, limit } of cases) {
    it(`${signal}: > ${limit} is the smallest 5%-step limit a version at the table's ${table} exceeds with p < 1e-4 in ${DEFAULT_GUARDRAIL.minSamples} outcomes`, () => {
      const n = DEFAULT_GUARDRAIL.minSamples;
      const firstTripping = (l: number) => Math.floor(l * n + 1e-9) + 1; // "> l" with n outcomes
      expect(binomialTail(n, table, firstTripping(limit))).toBeLessThan(1e-4);
      expect(binomialTail(n, table, firstTripping(limit - 0.05))).toBeGreaterThanOrEqual(1e-4);
      // A hard breach (3× the limit) trips in a full window with near certainty.
      expect(binomialTail(n, Math.min(1, 3 * limit), firstTripping(limit))).toBeGreaterThan(0.999);
    });
  }
});

const routing = (over: Partial<ServiceRouting> = {}): ServiceRouting => ({
  service: 'chat',
  stable: 'v1',
  canary: 'v2',
  canaryWeight: 20,
  killed: false,
  rolloutHashes: { v1: 'h1', v2: 'h2' },
  guardrail: LIMITS,
  ...over,
});

function harness(initial: ServiceRouting) {
  let state: ServiceRouting | undefined = initial;
  let generation = 1;
  let now = 1_000_000;
  const trips: { trip: Trip; origin: string }[] = [];
  const cleared: Trip[] = [];
  const guardrail = new Guardrail({
    lookup: (s) => (state && s === state.service ? state : undefined),
    snapshot: () => (state ? [state] : []),
    generation: () => generation,
    instance: 'replica-a',
    onTrip: (trip, origin) => trips.push({ trip, origin }),
    onClear: (trip) => cleared.push(trip),
    clock: () => now,
  });
  return {
    guardrail,
    trips,
    cleared,
    setState(next: ServiceRouting | undefined) {
      state = next;
      generation += 1;
    },
    tick(ms: number) {
      now += ms;
    },
    get state() {
      return state;
    },
  };
}

const canary = { service: 'chat', version: 'v2', rolloutHash: 'h2' };

describe('Guardrail', () => {
  it('trips a failing canary once the window has minSamples, and the trip routes its users to stable', () => {
    const h = harness(routing());
    for (let i = 0; i < 44; i++) h.guardrail.observe('errors', canary, false);
    // 6 of 50 is 12% > 10%, but the first five errors come before 50 outcomes: no trip on tiny n.
    for (let i = 0; i < 5; i++) expect(h.guardrail.observe('errors', canary, true)).toBeUndefined();
    expect(h.guardrail.canaryTripped(h.state)).toBe(false);
    const trip = h.guardrail.observe('errors', canary, true);
    expect(trip).toMatchObject({ service: 'chat', version: 'v2', rolloutHash: 'h2', signal: 'errors', bad: 6, n: 50, limit: 0.1, origin: 'replica-a' });
    expect(h.trips).toHaveLength(1);
    expect(h.guardrail.canaryTripped(h.state)).toBe(true);
    const d = decideVersion({ state: h.state, shadow: false, userKey: 'u', killSwitch: false, flagVersion: 'v2', canaryTripped: true, random: () => 0 });
    expect(d).toEqual({ version: 'v1', reason: 'guardrail' });
  });

  it('does not trip on a tiny n, however bad', () => {
    const h = harness(routing());
    for (let i = 0; i < 49; i++) h.guardrail.observe('hallucinations', canary, true);
    expect(h.trips).toHaveLength(0);
    h.guardrail.observe('hallucinations', canary, true);
    expect(h.trips.map((t) => t.trip.signal)).toEqual(['hallucinations']);
  });

  it('lets a healthy canary at the table limits through a long run', () => {
    const h = harness(routing());
    // Exactly 1 error in 100 and 5 hallucinations in 100, spread evenly, for 10,000 outcomes each.
    for (let i = 0; i < 10_000; i++) {
      h.guardrail.observe('errors', canary, i % 100 === 0);
      h.guardrail.observe('hallucinations', canary, i % 20 === 0);
    }
    expect(h.trips).toHaveLength(0);
  });

  it('forgets outcomes older than maxAge', () => {
    const h = harness(routing());
    for (let i = 0; i < 45; i++) h.guardrail.observe('errors', canary, true);
    h.tick(61_000);
    for (let i = 0; i < 49; i++) h.guardrail.observe('errors', canary, false);
    h.guardrail.observe('errors', canary, true);
    expect(h.trips).toHaveLength(0);
  });

  it('ignores the stable version, other revisions and services without a guardrail', () => {
    const h = harness(routing());
    for (let i = 0; i < 60; i++) {
      h.guardrail.observe('errors', { service: 'chat', version: 'v1', rolloutHash: 'h1' }, true);
      h.guardrail.observe('errors', { service: 'chat', version: 'v2', rolloutHash: 'old' }, true);
      h.guardrail.observe('errors', { service: 'other', version: 'v2', rolloutHash: 'h2' }, true);
    }
    expect(h.trips).toHaveLength(0);
    const off = harness(routing({ guardrail: undefined }));
    for (let i = 0; i < 60; i++) off.guardrail.observe('errors', canary, true);
    expect(off.trips).toHaveLength(0);
  });

  it("applies a peer's trip for the current canary only, once", () => {
    const h = harness(routing());
    const peer: Trip = { ...canary, signal: 'errors', bad: 9, n: 50, limit: 0.1, at: 1, origin: 'replica-b' };
    expect(h.guardrail.applyPeerTrip({ ...peer, rolloutHash: 'old' })).toBe(false);
    expect(h.guardrail.applyPeerTrip(peer)).toBe(true);
    expect(h.guardrail.applyPeerTrip(peer)).toBe(false);
    expect(h.trips.map((t) => t.origin)).toEqual(['peer']);
    expect(h.guardrail.canaryTripped(h.state)).toBe(true);
  });

  it('clears the trip and the windows once the routing state retires the canary, so a retry starts clean', () => {
    const h = harness(routing());
    for (let i = 0; i < 50; i++) h.guardrail.observe('errors', canary, true);
    expect(h.trips).toHaveLength(1);
    h.setState(routing({ canary: undefined, canaryWeight: 0, guardrail: undefined }));
    h.guardrail.forgetRetired();
    expect(h.cleared.map((t) => t.version)).toEqual(['v2']);
    expect(h.guardrail.list()).toEqual([]);
    h.setState(routing());
    expect(h.guardrail.canaryTripped(h.state)).toBe(false);
    for (let i = 0; i < 49; i++) h.guardrail.observe('errors', canary, true);
    expect(h.trips).toHaveLength(1);
  });
});

describe('guardrail configuration', () => {
  it('rejects limits that cannot work, naming the field', () => {
    expect(guardrailThresholdsSchema.safeParse({ minSamples: 10, window: 50, maxAgeSeconds: 60 }).success).toBe(false);
    const r = guardrailThresholdsSchema.safeParse({ errorRate: 0.1, minSamples: 60, window: 50, maxAgeSeconds: 60 });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['minSamples']);
  });

  it('reads a routing file with a guardrail', () => {
    const file = parseRoutingFile(
      `services:\n  chat:\n    stable: v1\n    canary: v2\n    canaryWeight: 20\n    guardrail: {errorRate: 0.1, minSamples: 50, window: 50, maxAgeSeconds: 60}\n`,
      'routing.yaml',
    );
    expect(file.services.chat?.guardrail).toEqual({ errorRate: 0.1, minSamples: 50, window: 50, maxAgeSeconds: 60 });
  });

  it('is on in the built-in default policy, with its trip check in the background analysis', () => {
    const policy = loadDefaultPolicy();
    expect(policy.guardrail?.thresholds).toEqual({ errorRate: 0.1, hallucinationRate: 0.2, minSamples: 50, window: 50, maxAgeSeconds: 60 });
    const metric = policy.background?.analysis.metrics.find((m) => m.name === 'guardrail');
    expect(metric?.provider.prometheus.query).toContain('fledge_guardrail_tripped');
    expect(metric).toMatchObject({ interval: '5s', action: 'rollback', successCondition: 'result[0] < 1' });
    expect(policy.background?.analysis.args).toContainEqual({ name: 'fledge-guardrail-hash', fromHash: 'Latest' });
  });

  it('is configurable per policy, and a policy without background analysis gets one from step 0', () => {
    const { policies } = loadPolicyCatalog(
      [{ source: 'p.yaml', text: `apiVersion: fledge.dev/v1alpha1\nkind: Policy\nmetadata: {name: strict}\nspec:\n  steps: [{setWeight: 10}, {pause: {}}]\n  guardrail: {errorRate: 0.02, minSamples: 20, window: 40, maxAge: 30s, checkInterval: 2s}\n` }],
      { includeDefault: false },
    );
    const strict = policies.get('strict')!;
    expect(strict.guardrail?.thresholds).toEqual({ errorRate: 0.02, minSamples: 20, window: 40, maxAgeSeconds: 30 });
    expect(strict.background?.startingStep).toBe(0);
    expect(strict.background?.analysis.metrics.map((m) => m.name)).toEqual(['guardrail']);
  });

  it('names a bad guardrail field in the error', () => {
    let err: unknown;
    try {
      loadPolicyText(`apiVersion: fledge.dev/v1alpha1\nkind: Policy\nmetadata: {name: bad}\nspec:\n  steps: [{setWeight: 10}]\n  guardrail: {errorRate: 2}\n`, 'bad.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/guardrail\.errorRate/);
  });

  it('refuses a background metric that takes the guardrail metric\'s name, saying where', () => {
    const text = `apiVersion: fledge.dev/v1alpha1
kind: Policy
metadata: {name: clash}
spec:
  steps: [{setWeight: 10}]
  guardrail: {errorRate: 0.1}
  analysis: {templates: [{templateName: t}]}
  analysisTemplates:
    - metadata: {name: t}
      spec:
        metrics:
          - name: guardrail
            interval: 1m
            provider: {prometheus: {query: up}}
            successCondition: result[0] == 1
`;
    let err: unknown;
    try {
      loadPolicyText(text, 'clash.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toContainEqual({ path: 'spec.analysis', message: expect.stringContaining('metric name "guardrail" is taken') });
  });

  it("leaves the seed's Argo Rollout unchanged: no guardrail", () => {
    const seed = (name: string) => fileURLToPath(new URL(`../fixtures/seed/${name}`, import.meta.url));
    const { policies } = loadPolicyFiles([seed('rollout.yaml'), seed('analysis-template.yaml')], { includeDefault: false });
    const rollout = [...policies.values()][0]!;
    expect(rollout.guardrail).toBeUndefined();
    expect(rollout.background).toBeUndefined();
  });
});
