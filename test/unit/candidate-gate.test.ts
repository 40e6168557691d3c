import { describe, expect, it } from 'vitest';
import { candidateLost, weightGate, type CandidateAvailability } from '../../controller/engine/candidate-gate.js';
import { nextWakeAt, startRollout, transition, type MachineOptions, type RolloutEffect } from '../../controller/engine/rollout-machine.js';
import { loadPolicyText } from '../../controller/policy/load.js';
import { availabilityFingerprint, availabilityOf } from '../../controller/kube/candidate-availability.js';

const T0 = Date.UTC(2026, 0, 1);
const MIN = 60_000;
const ready: CandidateAvailability = { available: 1, desired: 1, observed: true };
const loading: CandidateAvailability = { available: 0, desired: 2, observed: true };
const policyText = 'kind: Rollout\nmetadata: {name: steps}\nspec:\n  strategy:\n    canary:\n      steps:\n        - setWeight: 5\n        - pause: {}\n        - setWeight: 50\n';
const policy = loadPolicyText(policyText, 'steps.yaml').policies.get('steps')!;
const weights = (effects: RolloutEffect[]) => effects.flatMap((e) => (e.type === 'set-weight' ? [e.weight] : []));

describe('weightGate', () => {
  const base = { target: 5, current: 0, waitedMs: 0, timeoutMs: 10 * MIN };
  it('is open without availability tracking, for lowering weights, and with an available replica', () => {
    expect(weightGate({ ...base, candidate: undefined }).kind).toBe('open');
    expect(weightGate({ ...base, target: 0, current: 5, candidate: loading }).kind).toBe('open');
    expect(weightGate({ ...base, target: 5, current: 25, candidate: loading }).kind).toBe('open');
    expect(weightGate({ ...base, candidate: ready }).kind).toBe('open');
  });
  it('waits for a candidate without available replicas, or whose status is stale, then times out', () => {
    const wait = weightGate({ ...base, candidate: loading });
    expect(wait).toEqual({ kind: 'wait', message: expect.stringContaining('0/2 replicas available') as string });
    expect(weightGate({ ...base, candidate: { ...ready, observed: false } })).toMatchObject({ kind: 'wait', message: expect.stringContaining('no ReplicaSet for its pod template yet') as string });
    const out = weightGate({ ...base, candidate: loading, waitedMs: 10 * MIN });
    expect(out.kind).toBe('timed-out');
    expect(out.kind === 'timed-out' && out.message).toContain('no available replica after 10m');
  });
});

describe('candidateLost', () => {
  it('is a breach only for a serving candidate whose observed status has no available replica', () => {
    expect(candidateLost(5, loading)).toBe('candidate lost its available replicas (0/2 available) while serving 5%');
    expect(candidateLost(0, loading)).toBeUndefined();
    expect(candidateLost(5, ready)).toBeUndefined();
    expect(candidateLost(5, { ...loading, observed: false })).toBeUndefined();
    expect(candidateLost(5, undefined)).toBeUndefined();
  });
});

describe('candidate availability from Kubernetes objects', () => {
  const deployment = { metadata: { generation: 3 }, spec: { replicas: 2, selector: {}, template: {} }, status: { observedGeneration: 2, replicas: 3, updatedReplicas: 1, availableReplicas: 2 } };
  it('counts the available Pods of the candidate ReplicaSet only', () => {
    expect(availabilityOf({ status: { replicas: 1, availableReplicas: 0 } }, deployment)).toEqual({ available: 0, desired: 2, observed: true });
    expect(availabilityOf({ status: { replicas: 2, availableReplicas: 2 } }, deployment)).toEqual({ available: 2, desired: 2, observed: true });
    expect(availabilityOf(undefined, deployment)).toEqual({ available: 0, desired: 2, observed: false });
  });
  it('the watch fingerprint moves with the Deployment counts, not with its generation', () => {
    const base = availabilityFingerprint(deployment);
    expect(availabilityFingerprint({ ...deployment, metadata: { generation: 9 }, status: { ...deployment.status, observedGeneration: 9 } })).toBe(base);
    expect(availabilityFingerprint({ ...deployment, status: { ...deployment.status, availableReplicas: 3 } })).not.toBe(base);
  });
});

describe('the machine with availability', () => {
  const opts = (candidate: CandidateAvailability): MachineOptions => ({ candidate, availabilityTimeoutMs: 10 * MIN });

  it('holds the first weight until the candidate is available, then sets it', () => {
    const started = startRollout(policy, T0, opts(loading));
    expect(started.state).toMatchObject({ phase: 'Progressing', stepIndex: 0, weight: 0 });
    expect(started.state.message).toContain('waiting for an available candidate replica before setting 5%');
    expect(weights(started.effects)).toEqual([]);
    expect(nextWakeAt(policy, started.state, opts(loading))).toBe(T0 + 10 * MIN);
    const later = transition(policy, started.state, { type: 'tick', now: T0 + MIN }, opts(ready));
    expect(weights(later.effects)).toEqual([5]);
    expect(later.state).toMatchObject({ phase: 'Paused', weight: 5, stepIndex: 1 });
  });

  it('pauses with reason candidate-unavailable after the timeout; resume waits again', () => {
    const started = startRollout(policy, T0, opts(loading));
    const timedOut = transition(policy, started.state, { type: 'tick', now: T0 + 10 * MIN }, opts(loading));
    expect(timedOut.state).toMatchObject({ phase: 'Paused', weight: 0, pause: { reason: 'candidate-unavailable' } });
    expect(timedOut.effects.find((e) => e.type === 'event' && e.reason === 'CandidateUnavailable')).toBeDefined();
    const resumed = transition(policy, timedOut.state, { type: 'action', action: 'resume', now: T0 + 11 * MIN }, opts(loading));
    expect(resumed.state).toMatchObject({ phase: 'Progressing', weight: 0, stepStartedAt: T0 + 11 * MIN });
  });

  it('the timeout is time-scaled', () => {
    const started = startRollout(policy, T0, { ...opts(loading), timeScale: 600 });
    expect(nextWakeAt(policy, started.state, { ...opts(loading), timeScale: 600 })).toBe(T0 + 1_000);
  });

  it('a serving candidate that loses its replicas is rolled back, also while paused', () => {
    const at5 = startRollout(policy, T0, opts(ready)).state;
    expect(at5).toMatchObject({ phase: 'Paused', weight: 5 });
    const lost = transition(policy, at5, { type: 'tick', now: T0 + MIN }, opts({ available: 0, desired: 1, observed: true }));
    expect(lost.state).toMatchObject({ phase: 'RolledBack', weight: 0 });
    expect(weights(lost.effects)).toEqual([0]);
    expect(lost.state.message).toContain('candidate lost its available replicas (0/1 available) while serving 5%');
  });
});
