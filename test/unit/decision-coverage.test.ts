import { describe, expect, it } from 'vitest';
import { DEFAULT_DECISIONS_QUERY, DEFAULT_TRAFFIC_QUERY, fillQuery, silentFailOpen } from '../../controller/analysis/decision-coverage.js';
import { startRollout } from '../../controller/engine/rollout-machine.js';
import { DecisionMonitor } from '../../controller/kube/decision-monitor.js';
import { loadPolicyText } from '../../controller/policy/load.js';
import { createLogger } from '../../common/logger.js';

const policy = loadPolicyText('kind: Rollout\nmetadata: {name: p}\nspec:\n  strategy:\n    canary:\n      steps:\n        - setWeight: 5\n        - pause: {duration: 1h}\n', 'p.yaml').policies.get('p')!;
const T0 = Date.UTC(2026, 0, 1);

describe('silentFailOpen', () => {
  it('names the likely cause when traffic flowed and extproc decided none', () => {
    expect(silentFailOpen({ service: 'model', requests: 412.4, decisions: 0, minRequests: 20 })).toBe(
      'EnvoyFilter not applied or ext_proc cluster unreachable: 412 requests reached model but extproc decided none',
    );
  });
  it('says nothing with decisions, too little traffic, or no data', () => {
    expect(silentFailOpen({ service: 'model', requests: 500, decisions: 3, minRequests: 20 })).toBeUndefined();
    expect(silentFailOpen({ service: 'model', requests: 19, decisions: 0, minRequests: 20 })).toBeUndefined();
    expect(silentFailOpen({ service: 'model', requests: Number.NaN, decisions: 0, minRequests: 20 })).toBeUndefined();
  });
});

describe('fillQuery', () => {
  it('fills the default queries and rejects unknown placeholders by name', () => {
    expect(fillQuery(DEFAULT_TRAFFIC_QUERY, { service: 'model', namespace: 'ml' })).toContain('destination_service_name="model",destination_service_namespace="ml"');
    expect(fillQuery(DEFAULT_DECISIONS_QUERY, { service: 'model', namespace: 'ml' })).toContain('fledge_extproc_decisions_total{service="model"}');
    expect(() => fillQuery('up{job="{{svc}}"}', { service: 'model', namespace: 'ml' })).toThrow('{{svc}}');
  });
});

describe('DecisionMonitor', () => {
  const log = createLogger('test', 'silent');
  const provider = (requests: number[], decisions: number[]) => ({ queries: 0, async measure(q: string) { this.queries++; return q.includes('istio_requests_total') ? requests : decisions; } });
  const input = (now: number) => ({ key: 'ml/model-v2', service: 'model', namespace: 'ml', policy, state: startRollout(policy, T0).state, options: {}, now });

  it('pauses a Progressing rollout with the message, at most once per interval', async () => {
    const p = provider([300], []);
    const monitor = new DecisionMonitor(p, log, { intervalMs: 30_000, confirmations: 1 });
    const out = await monitor.check(input(T0));
    expect(out.state).toMatchObject({ phase: 'Paused', pause: { reason: 'no-decisions' }, weight: 5 });
    expect(out.state.message).toContain('EnvoyFilter not applied or ext_proc cluster unreachable: 300 requests reached model but extproc decided none');
    expect(out.effects.find((e) => e.type === 'event' && e.reason === 'NoDecisions')).toBeDefined();
    expect(out.wakeAt).toBeUndefined();
    const again = await monitor.check(input(T0 + 1_000));
    expect(again.state.phase).toBe('Progressing');
    expect(again.wakeAt).toBe(T0 + 30_000);
    expect(p.queries).toBe(2);
  });

  it('pauses only when consecutive checks agree: one window without decisions is a scrape race, not a fail-open', async () => {
    let decisions: number[] = [];
    const monitor = new DecisionMonitor({ measure: async (q: string) => (q.includes('istio_requests_total') ? [300] : decisions) }, log, { intervalMs: 30_000 });
    const first = await monitor.check(input(T0));
    expect(first.state.phase).toBe('Progressing');
    expect(first.wakeAt).toBe(T0 + 30_000);
    decisions = [250];
    expect((await monitor.check(input(T0 + 30_000))).state.phase).toBe('Progressing');
    // The strike was reset by the healthy check: a new detection needs two in a row again.
    decisions = [];
    expect((await monitor.check(input(T0 + 60_000))).state.phase).toBe('Progressing');
    const confirmed = await monitor.check(input(T0 + 90_000));
    expect(confirmed.state).toMatchObject({ phase: 'Paused', pause: { reason: 'no-decisions' } });
  });

  it('keeps going when extproc decides, and when a query fails', async () => {
    const healthy = await new DecisionMonitor(provider([300], [280]), log).check(input(T0));
    expect(healthy.state.phase).toBe('Progressing');
    expect(healthy.wakeAt).toBe(T0 + 30_000);
    const failing = await new DecisionMonitor({ measure: () => Promise.reject(new Error('down')) }, log).check(input(T0));
    expect(failing.state.phase).toBe('Progressing');
  });
});
