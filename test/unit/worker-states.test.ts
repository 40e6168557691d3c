import { describe, expect, it } from 'vitest';
import { agreedState } from '../../extproc/workers/worker-states.js';

const routing = (weight: number) => [{ service: 'chat', stable: 'v1', canary: 'v2', canaryWeight: weight, killed: false, rolloutHashes: {} }];
const body = (index: number, weight: number, generation: number) => ({
  services: routing(weight),
  routingGeneration: generation,
  flags: { generation: 1, lastError: null },
  guardrail: { trips: [] },
  worker: { index, pid: 1000 + index, decisions: index * 10 },
});

describe("the primary's /debug/state over its workers", () => {
  it('is the workers’ state when they all run the same routing', () => {
    const { state, agreed } = agreedState([{ index: 1, body: body(1, 20, 3) }, { index: 2, body: body(2, 20, 1) }], 2, undefined);
    expect(state.inSync).toBe(true);
    expect(state.services).toEqual(routing(20));
    expect(state).not.toHaveProperty('worker');
    expect(agreed).toMatchObject({ services: routing(20) });
    expect(state.workers).toEqual([
      { index: 1, pid: 1001, decisions: 10, routingGeneration: 3, flagsGeneration: 1, guardrailTrips: 0, inSync: true },
      { index: 2, pid: 1002, decisions: 20, routingGeneration: 1, flagsGeneration: 1, guardrailTrips: 0, inSync: true },
    ]);
  });

  it('stays at the last state every worker ran while a change is half way through them', () => {
    const before = agreedState([{ index: 1, body: body(1, 20, 3) }, { index: 2, body: body(2, 20, 3) }], 2, undefined).agreed;
    const { state, agreed } = agreedState([{ index: 1, body: body(1, 50, 4) }, { index: 2, body: body(2, 20, 3) }], 2, before);
    expect(state.inSync).toBe(false);
    expect(state.services).toEqual(routing(20));
    expect(agreed).toBe(before);
    expect((state.workers as { inSync: boolean }[]).map((w) => w.inSync)).toEqual([false, true]);
  });

  it('is not in sync while a worker does not answer, and says which', () => {
    const { state } = agreedState([{ index: 1, body: body(1, 20, 3) }, { index: 2, error: 'no answer in 2000 ms' }], 2, undefined);
    expect(state.inSync).toBe(false);
    expect(state.workers).toContainEqual({ index: 2, error: 'no answer in 2000 ms' });
    // Nothing agreed yet: the answering worker's state, marked as not in sync.
    expect(state.services).toEqual(routing(20));
  });
});
