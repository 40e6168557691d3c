// The local controller refuses, at start, a rollout whose policy reads a metric no evaluator
// of the stack produces for its service: the rollout is Invalid with a message naming the
// metric and the service (not Progressing towards an analysis that pauses for ever), while a
// rollout of a covered service under the same policy is accepted.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { parseStatus, type RolloutStatus } from '../../controller/kube/rollout-status.js';
import { LocalStateStore } from '../../controller/local/state-store.js';
import { writeTrafficState } from '../../controller/local/traffic-state.js';
import { newRouteToken } from '../../common/route-token.js';
import { startProcess, waitForHttp, type ManagedProcess } from '../../local/child-process.js';
import { CLI } from '../harness/dataplane.js';
import { waitUntil } from '../harness/rollout-fixture.js';
import { freeStackPorts } from '../harness/stack-ports.js';

describe('local controller: evaluator coverage at start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-coverage-'));
  let controller: ManagedProcess | undefined;
  afterAll(async () => {
    await controller?.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });

  it('makes a rollout of a service no golden entry covers Invalid, naming metric and service; a covered one is not', async () => {
    const ports = await freeStackPorts(0);
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir);
    // Golden probes on, with a golden set that covers only the service "chat".
    const golden = join(dir, 'golden.yaml');
    writeFileSync(golden, toYaml({ entries: [{ id: 'capital', service: 'chat', prompt: 'What is the capital of France?', expect: { facts: ['Paris'] } }] }));
    const versions = { v1: {}, v2: {} };
    const stack = join(dir, 'stack.yaml');
    writeFileSync(stack, toYaml({ services: { chat: { stable: 'v1', versions }, search: { stable: 'v1', versions } }, probes: { goldenFile: golden } }));
    const routeToken = newRouteToken();
    const upstreams = { v1: { host: '127.0.0.1', port: 1 }, v2: { host: '127.0.0.1', port: 2 } };
    writeTrafficState(join(stateDir, 'traffic.json'), {
      services: Object.fromEntries(['chat', 'search'].map((s) => [s, { stable: 'v1', canaryWeight: 0, mirrorPercent: 0, killed: false, routeToken, upstreams }])),
    });
    const rollouts = join(dir, 'rollouts.yaml');
    // Both under the built-in default policy, whose quality-score and hallucination-rate need an evaluator.
    writeFileSync(rollouts, toYaml({ rollouts: [{ service: 'search', candidate: 'v2' }, { service: 'chat', candidate: 'v2' }] }));
    controller = startProcess(
      'controller',
      process.execPath,
      [CLI, 'controller', '--local', '--state-dir', stateDir, '--rollouts', rollouts, '--stack', stack, '--prometheus-url', 'http://127.0.0.1:1', '--admin-port', String(ports.controllerAdmin)],
      join(dir, 'controller.log'),
    );
    // Ready once every rollout of the file was reconciled once.
    await waitForHttp(controller, `http://127.0.0.1:${ports.controllerAdmin}/readyz`);
    const store = new LocalStateStore(stateDir);
    const status = (name: string): RolloutStatus => parseStatus(readFileSync(store.statusFile(name), 'utf8'));

    const search = status('search-v2');
    expect(search.phase).toBe('Invalid');
    expect(search.message).toContain('policy "default" metric quality-score reads inference_quality_score, but no evaluator produces quality scores for service "search"');
    expect(search.message).toContain('metric hallucination-rate reads inference_hallucination_total');
    expect(search.weight).toBe(0);

    // chat is covered: its reconcile goes past the policy to the traffic switch (which, with
    // no Envoy in this test, fails and is retried); it is never refused as invalid.
    const log = () => readFileSync(join(dir, 'controller.log'), 'utf8').split('\n').filter((l) => l.includes('"rollout":"chat-v2"'));
    await waitUntil('chat-v2 to reach the traffic switch', async () => log().some((l) => l.includes('envoy-routes')));
    expect(log().filter((l) => l.includes('invalid'))).toEqual([]);
    expect(() => status('chat-v2')).toThrow(/ENOENT/);
  });
});

