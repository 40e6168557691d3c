import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { localStateDir } from '../../cli/rollout-mode.js';
import { startRollout } from '../../controller/engine/rollout-machine.js';
import { toStatus } from '../../controller/kube/rollout-status.js';
import { ActionFiles } from '../../controller/local/action-files.js';
import { resolveLocalTarget } from '../../controller/local/local-target.js';
import { LocalStateStore } from '../../controller/local/state-store.js';
import { localRolloutHash, type TrafficState } from '../../controller/local/traffic-state.js';
import { loadDefaultPolicy } from '../../controller/policy/load.js';

const dir = mkdtempSync(join(tmpdir(), 'fledge-local-mode-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('CLI mode rule', () => {
  const withRollouts = join(dir, 'with');
  mkdirSync(join(withRollouts, '.fledge', 'rollouts'), { recursive: true });
  const without = join(dir, 'without');
  mkdirSync(without, { recursive: true });

  it('is local with --state-dir, or when ./.fledge/rollouts exists and nothing asks for a cluster', () => {
    expect(localStateDir({ stateDir: 'x' }, without)).toBe(join(without, 'x'));
    expect(localStateDir({}, withRollouts)).toBe(join(withRollouts, '.fledge'));
    expect(localStateDir({}, without)).toBeUndefined();
  });

  it('is cluster when --kubeconfig, -n or -A is given; --state-dir with them is an error', () => {
    expect(localStateDir({ kubeconfig: 'kc' }, withRollouts)).toBeUndefined();
    expect(localStateDir({ namespace: 'ns' }, withRollouts)).toBeUndefined();
    expect(localStateDir({ allNamespaces: true }, withRollouts)).toBeUndefined();
    expect(() => localStateDir({ stateDir: 'x', namespace: 'ns' }, without)).toThrow(/cannot be combined/);
  });
});

describe('local state store and action files', () => {
  it('round-trips the status JSON, reports a corrupt file, and appends Events', () => {
    const store = new LocalStateStore(join(dir, 'store'));
    store.ensure();
    expect(store.read('r')).toEqual({ kind: 'none' });
    const started = startRollout(loadDefaultPolicy(), 1_000);
    const status = toStatus(started.state, 12, undefined);
    const text = store.write('r', status);
    const read = store.read('r');
    expect(read).toEqual({ kind: 'ok', status, text });
    store.appendEvents('r', [{ severity: 'Normal', reason: 'RolloutStarted', message: 'm' }], 2_000);
    expect(store.readEvents('r')).toEqual([{ time: new Date(2_000).toISOString(), severity: 'Normal', reason: 'RolloutStarted', message: 'm' }]);
    expect(store.names()).toEqual(['r']);
    writeFileSync(store.statusFile('r'), '{"version": 1');
    expect(store.read('r')).toMatchObject({ kind: 'corrupt', problem: expect.stringContaining('unreadable') });
  });

  it('consumes an action only if it was not replaced meanwhile', () => {
    const actions = new ActionFiles(join(dir, 'actions-state'));
    actions.request('r', 'pause');
    const first = actions.read('r')!;
    expect(first.action).toBe('pause');
    actions.request('r', 'abort');
    actions.consume('r', first);
    expect(actions.read('r')?.action).toBe('abort');
    actions.consume('r', actions.read('r')!);
    expect(actions.read('r')).toBeUndefined();
    writeFileSync(join(actions.dir, 'x'), 'explode\n');
    expect(actions.read('x')).toEqual({ raw: 'explode\n', action: undefined });
  });
});

describe('local target resolution', () => {
  const traffic: TrafficState = {
    services: { chat: { stable: 'v1', canaryWeight: 0, mirrorPercent: 0, killed: false, routeToken: 'a'.repeat(32), upstreams: { v1: { host: 'h', port: 1 }, v2: { host: 'h', port: 2 } } } },
  };
  const spec = { name: 'r', service: 'chat', candidate: 'v2', policy: 'default' };

  it('uses the local rollout hashes of candidate and stable', () => {
    expect(resolveLocalTarget(spec, traffic, undefined)).toEqual({
      target: { virtualService: 'chat', stableSubset: 'v1', canarySubset: 'v2', canaryHash: localRolloutHash('chat', 'v2'), stableHash: localRolloutHash('chat', 'v1') },
    });
  });

  it('names an unknown service or version, and a candidate that is already stable', () => {
    expect(resolveLocalTarget({ ...spec, service: 'nope' }, traffic, undefined)).toEqual({ problem: 'service nope is not part of the local stack (known: chat)' });
    expect(resolveLocalTarget({ ...spec, candidate: 'v9' }, traffic, undefined)).toEqual({ problem: 'no model server runs version v9 of chat (known: v1, v2)' });
    expect(resolveLocalTarget({ ...spec, candidate: 'v1' }, traffic, undefined)).toEqual({ problem: 'candidate v1 is already the stable version of chat' });
  });

  it('keeps the stable version a started rollout began with after the candidate is promoted', () => {
    const first = resolveLocalTarget(spec, traffic, undefined);
    if (!('target' in first)) throw new Error('expected a target');
    const promoted: TrafficState = { services: { chat: { ...traffic.services.chat!, stable: 'v2' } } };
    expect(resolveLocalTarget(spec, promoted, first.target)).toEqual(first);
  });
});
