/**
 * Stages that end on evidence: a timed pause followed by an analysis with compare metrics.
 * The rollout is driven like a reconciler drives it (advanceRollout at each wake-up); the
 * metrics provider answers PromQL count queries from per-second rates per arm, so counts
 * grow with the stage's window as Prometheus' increase() would.
 */
import { describe, expect, it } from 'vitest';
import type { MetricsProvider } from '../../controller/analysis/prometheus.js';
import { advanceRollout } from '../../controller/engine/advance.js';
import { evidenceStageAt, EVIDENCE_CAP_FACTOR } from '../../controller/engine/evidence-stage.js';
import { startRollout, transition, type RolloutEffect } from '../../controller/engine/rollout-machine.js';
import { parseRolloutState, serializeRolloutState, type RolloutState } from '../../controller/engine/rollout-state.js';
import { loadPolicyText } from '../../controller/policy/load.js';
import { renderTable, viewOfStatus } from '../../cli/rollout-view.js';
import { serializeStatus, toStatus } from '../../controller/kube/rollout-status.js';
import type { Policy } from '../../controller/policy/policy.js';

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 1);
const hashes = { canaryHash: 'new', stableHash: 'old' };
const H = '{{args.canary-hash}}';

function policy(options: { compare?: string; pause?: string } = {}): Policy {
  const text = `kind: Policy
metadata: {name: ev}
spec:
  steps:
    - setWeight: 10
    - pause: {duration: ${options.pause ?? '10m'}}
    - analysis:
        templates: [{templateName: t}]
        args: [{name: canary-hash, valueFrom: {podTemplateHashValue: Latest}}]
    - setWeight: 100
  analysisTemplates:
    - metadata: {name: t}
      spec:
        metrics:
          - name: error-rate
            provider:
              prometheus:
                query: (sum(rate(inference_errors_total{rollout_hash="${H}"}[10m])) or vector(0)) / sum(rate(inference_requests_total{rollout_hash="${H}"}[10m]))
            successCondition: result[0] <= 0.2
${options.compare ?? '            compare: {margin: 0.01}'}
`;
  return loadPolicyText(text, 'ev.yaml').policies.get('ev')!;
}

interface Arm {
  rps: number;
  errorRate: number;
}

/** Counts over the query's range from per-second rates; the ratio query from the rates. */
function provider(canary: Arm, stable: Arm, opts: { failCounts?: boolean } = {}): MetricsProvider & { queries: string[] } {
  const queries: string[] = [];
  return {
    queries,
    async measure(query) {
      queries.push(query);
      const arm = query.includes('"new"') ? canary : stable;
      const range = /\[(\d+)([sm])\]/.exec(query);
      const seconds = range ? Number(range[1]) * (range[2] === 'm' ? 60 : 1) : 600;
      if (query.includes(' / ') || query.includes(')/')) return [arm.errorRate];
      if (opts.failCounts && /\[\d+s\]/.test(query)) throw new Error('Prometheus unreachable');
      if (query.includes('increase(inference_errors_total')) return [arm.rps * arm.errorRate * seconds];
      if (query.includes('increase(inference_requests_total')) return [arm.rps * seconds];
      if (query.includes('inference_errors_total')) return [arm.errorRate];
      throw new Error(`unexpected query ${query}`);
    },
  };
}

/** Advances at each wake-up until the rollout leaves Progressing (or `until`). */
async function drive(p: Policy, metrics: MetricsProvider, start?: { state: RolloutState; now: number }) {
  let now = start?.now ?? T0;
  const effects: RolloutEffect[] = [];
  let state = start?.state ?? startRollout(p, now).state;
  let wakeAt: number | undefined = now;
  for (let i = 0; i < 400 && state.phase === 'Progressing' && wakeAt !== undefined; i++) {
    now = Math.max(now, wakeAt);
    const r = await advanceRollout({ policy: p, state, hashes, provider: metrics, clock: () => now });
    state = r.state;
    wakeAt = r.wakeAt;
    effects.push(...r.effects);
  }
  return { state, effects, now };
}

const reasons = (effects: RolloutEffect[]) => effects.flatMap((e) => (e.type === 'event' ? [e.reason] : []));
const eventOf = (effects: RolloutEffect[], reason: string) => effects.find((e): e is Extract<RolloutEffect, { type: 'event' }> => e.type === 'event' && e.reason === reason);

describe('evidence stages', () => {
  it('only a timed pause followed by an analysis with compare metrics is one; threshold-only policies keep fixed pauses', () => {
    const stage = evidenceStageAt(policy(), 1)!;
    expect(stage.metrics.map((m) => m.name)).toEqual(['error-rate']);
    expect(stage.plannedMs).toBe(10 * MIN);
    expect(stage.capMs).toBe(EVIDENCE_CAP_FACTOR * 10 * MIN);
    expect(evidenceStageAt(policy(), 0)).toBeUndefined();
    expect(evidenceStageAt(policy({ compare: '' }), 1)).toBeUndefined();
  });

  it('a healthy canary ends the stage as soon as it is shown not worse, long before the planned pause, and is promoted', async () => {
    const { state, effects } = await drive(policy(), provider({ rps: 20, errorRate: 0.01 }, { rps: 180, errorRate: 0.01 }));
    expect(state.phase, state.message).toBe('Promoted');
    const decided = eventOf(effects, 'StageDecided')!;
    expect(decided.message).toMatch(/ended after \d+m?\d*s? of 10m planned: every compared metric is not worse than stable \(error-rate: estimate .* n canary \d+ \/ stable \d+\)/);
    // The analysis after the stage took the stage's decision: one measurement, Successful, with its n.
    const measured = state.lastAnalysis!.metrics[0]!.measurements.at(-1)!;
    expect(measured.phase).toBe('Successful');
    expect(measured.message).toContain('compared with stable: not-worse');
    expect(measured.n).toBeGreaterThan(1000);
    // Ended early: the final step started before the planned 10 minutes were over.
    expect(state.stepStartedAt - T0).toBeLessThan(10 * MIN);
    expect(reasons(effects)).not.toContain('StageExtended');
  });

  it('a canary clearly worse than the stable is rolled back at a look, not at the end of the pause', async () => {
    const { state, effects, now } = await drive(policy(), provider({ rps: 20, errorRate: 0.08 }, { rps: 180, errorRate: 0.01 }));
    expect(state.phase).toBe('RolledBack');
    expect(state.weight).toBe(0);
    expect(state.message).toMatch(/metric error-rate: .*estimate 0\.07.*all traffic returned to stable/);
    expect(now - T0).toBeLessThan(10 * MIN);
    expect(effects).toContainEqual({ type: 'retire-candidate' });
  });

  it('undecided evidence extends the stage past its planned pause, then pauses at the cap with the reason and n; resume collects again', async () => {
    // 0.02 requests/s on the canary: a few dozen samples in 30 minutes, never enough.
    const p = policy();
    const { state, effects, now } = await drive(p, provider({ rps: 0.02, errorRate: 0.01 }, { rps: 180, errorRate: 0.01 }));
    expect(state.phase).toBe('Paused');
    expect(state.pause?.reason).toBe('not-enough-evidence');
    expect(state.weight).toBe(10);
    expect(state.message).toMatch(/not enough evidence after 30m .*error-rate: undecided \(estimate .* n canary \d+ \/ stable \d+\)/);
    expect(now - T0).toBeGreaterThanOrEqual(30 * MIN);
    const extended = eventOf(effects, 'StageExtended')!;
    expect(extended.message).toContain('planned 10m passed undecided');
    expect(reasons(effects).filter((r) => r === 'StageExtended')).toHaveLength(1);
    // fledge status shows the least decided metric with n per arm.
    const view = viewOfStatus('ml', 'model-v2', serializeStatus(toStatus(state, p.steps.length, undefined)));
    expect(view.analysis).toMatch(/^evidence \(\d+ looks\): error-rate undecided n=\d+\/\d+$/);
    expect(view.phase).toBe('Paused');
    // …and under the table each compared metric's verdict, estimate with its interval, and n per arm.
    const table = renderTable([view], false).split('\n');
    expect(table.slice(3)).toEqual([
      'EVIDENCE (compared with the stable: estimate [interval], n per arm)',
      expect.stringMatching(/^ {2}model-v2 {2}error-rate {2}undecided {2}estimate [-\d.e]+ \[-1, 1\], margin 0\.01, n canary \d+ \/ stable [\d,]+$/),
    ]);
    // The state round-trips through its serialised form (NaN estimates included).
    expect(parseRolloutState(serializeRolloutState(state)).evidence?.decisions[0]?.verdict).toBe('undecided');

    const resumed = transition(p, state, { type: 'action', action: 'resume', now }, {});
    expect(resumed.state.phase).toBe('Progressing');
    expect(resumed.state.evidence?.looks ?? 0).toBe(0);
    expect(resumed.state.stepStartedAt).toBe(now);
  });

  it("the count range is the stage's age, at least the minimum window (60 s, or the controller's evidenceMinWindowSeconds; not time-scaled)", async () => {
    const p = policy();
    const counts = (q: { queries: string[] }) => q.queries.filter((x) => x.includes('increase(inference_requests_total')).map((x) => /\[(\w+)\]/.exec(x)![1]);
    const look = async (options: { timeScale?: number; evidenceMinWindowSeconds?: number }, ageMs: number) => {
      const m = provider({ rps: 1, errorRate: 0.01 }, { rps: 9, errorRate: 0.01 });
      const state = startRollout(p, T0, options).state;
      await advanceRollout({ policy: p, state, hashes, provider: m, clock: () => T0 + ageMs, options });
      return counts(m);
    };
    expect(await look({}, 30_000)).toEqual(['60s', '60s']);
    expect(await look({}, 95_000)).toEqual(['95s', '95s']);
    // The local stack: time scale 30 (a look every second), Prometheus scraping every second.
    expect(await look({ timeScale: 30, evidenceMinWindowSeconds: 5 }, 1_000)).toEqual(['5s', '5s']);
    expect(await look({ timeScale: 30, evidenceMinWindowSeconds: 5 }, 12_000)).toEqual(['12s', '12s']);
  });

  it('counts that cannot be read decide nothing: the stage never promotes and pauses at the cap naming the failure', async () => {
    const { state } = await drive(policy(), provider({ rps: 20, errorRate: 0.01 }, { rps: 180, errorRate: 0.01 }, { failCounts: true }));
    expect(state.phase).toBe('Paused');
    expect(state.pause?.reason).toBe('not-enough-evidence');
    expect(state.message).toContain('Prometheus unreachable');
  });

  it('a look that arrives after the stage ended (stale) changes nothing', () => {
    const p = policy();
    const started = startRollout(p, T0).state;
    const paused = transition(p, started, { type: 'action', action: 'pause', now: T0 + 1000 }).state;
    const stale = transition(p, paused, { type: 'evidence', now: T0 + 2000, decisions: [] });
    expect(stale.state).toBe(paused);
  });
});
