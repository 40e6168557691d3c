import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalTrafficRouter } from '../../controller/local/local-router.js';
import { stackConfigSchema } from '../../local/stack-config.js';
import { LocalStack } from '../../local/stack.js';
import { freeStackPorts } from '../harness/stack-ports.js';
import { metricValue } from '../harness/dataplane.js';
import { chat, mapLimit } from '../harness/http-client.js';

describe('local traffic router on the real local stack', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-local-router-'));
  let stack: LocalStack;
  let router: LocalTrafficRouter;
  const users = Array.from({ length: 1000 }, (_, i) => `u${i}`);

  beforeAll(async () => {
    const ports = await freeStackPorts(2);
    const fast = { knobs: { latency: { kind: 'fixed', ms: 1 } } };
    const config = stackConfigSchema.parse({ ports, services: { chat: { stable: 'v1', versions: { v1: fast, v2: fast } } } });
    stack = new LocalStack(config, { stateDir: join(dir, 'state') });
    await stack.start(() => undefined);
    router = new LocalTrafficRouter(
      { trafficFile: stack.trafficFile, routingFile: stack.routingFile, envoyRoutes: stack.routes, extprocAdminUrl: `http://127.0.0.1:${ports.extprocAdmin}` },
      'chat',
      'v2',
    );
  });
  afterAll(async () => {
    await stack?.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });

  const servedBy = async () => (await mapLimit(users, 32, (user) => chat(stack.config.ports.envoy, { host: 'chat', user }))).map((a) => a.servedBy);

  it('never lets extproc pick a version whose route Envoy does not have yet (or any more): no route misses under traffic', async () => {
    const metrics = async () => (await fetch(`http://127.0.0.1:${stack.config.ports.extprocAdmin}/metrics`)).text();
    let running = true;
    let sent = 0;
    const traffic = mapLimit(Array.from({ length: 16 }), 16, async (_, lane) => {
      for (let i = 0; running; i++, sent++) await chat(stack.config.ports.envoy, { host: 'chat', user: `u${lane}-${i}` });
    });
    try {
      // Each change adds or removes the candidate's route while users keep coming.
      for (let round = 0; round < 3; round++) {
        const onCanary = metricValue(await metrics(), 'inference_requests_total', { service: 'chat', version: 'v2' });
        await router.setWeight(100);
        // Retire only once the candidate has served some of the users in between.
        for (const deadline = Date.now() + 10_000; metricValue(await metrics(), 'inference_requests_total', { service: 'chat', version: 'v2' }) <= onCanary && Date.now() < deadline; );
        await router.retireCandidate();
      }
    } finally {
      running = false;
      await traffic;
    }
    expect(sent).toBeGreaterThan(50);
    expect(metricValue(await metrics(), 'fledge_extproc_route_misses_total', { service: 'chat' })).toBe(0);
    // The candidate did serve in every round: the check above is not vacuous.
    expect(metricValue(await metrics(), 'inference_requests_total', { service: 'chat', version: 'v2' })).toBeGreaterThanOrEqual(3);
  });

  it('sets a weight that Envoy reports back and extproc routes sticky users by', async () => {
    await router.setWeight(25);
    expect(await router.verifyWeight(25)).toBe(true);
    expect(await router.verifyWeight(30)).toBe(false);
    const share = (100 * (await servedBy()).filter((v) => v === 'v2').length) / users.length;
    expect(Math.abs(share - 25)).toBeLessThanOrEqual(3);
  });

  it('makes the candidate stable on promotion', async () => {
    await router.setWeight(100);
    await router.promoteCandidate();
    expect(new Set(await servedBy())).toEqual(new Set(['v2']));
    // An answer Envoy failed open on (extproc past 200 ms on a busy machine) carries no reason: ask again.
    let answer = await chat(stack.config.ports.envoy, { host: 'chat', user: 'u1' });
    for (const deadline = Date.now() + 10_000; answer.headers['x-fledge-reason'] === undefined && Date.now() < deadline; ) answer = await chat(stack.config.ports.envoy, { host: 'chat', user: 'u1' });
    expect(answer.headers['x-fledge-reason']).toBe('no-canary');
  });
});
