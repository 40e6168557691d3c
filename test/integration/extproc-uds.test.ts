import { lstatSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCanaryBucket, stickyBucket } from '../../extproc/sticky.js';
import { DataPlane } from '../harness/dataplane.js';

const users = Array.from({ length: 60 }, (_, i) => `uds-user-${i}`);

describe('extproc on a Unix domain socket (Envoy pipe address)', () => {
  const dp = new DataPlane({ extprocSocket: true });
  beforeAll(async () => {
    await dp.start([{ name: 'chat', stable: 'v1', canary: 'v2', canaryWeight: 50 }]);
  });
  afterAll(() => dp.stop());

  it('decides every request through the socket, sticky as over TCP', async () => {
    expect(lstatSync(dp.extprocSocket).isSocket()).toBe(true);
    // Envoy's ext_proc cluster has the socket as its only endpoint: no TCP path to extproc exists.
    const clusters = await (await fetch(`${dp.envoy.adminUrl}/clusters?format=json`)).json() as { cluster_statuses: { name: string; host_statuses?: { address: { pipe?: { path: string } } }[] }[] };
    const extproc = clusters.cluster_statuses.find((c) => c.name === 'fledge_extproc');
    expect(extproc?.host_statuses?.map((h) => h.address.pipe?.path)).toEqual([dp.extprocSocket]);

    const { answers, decided } = await dp.decided(users, (user) => dp.request({ host: 'chat', user }));
    expect(decided.filter(Boolean).length).toBeGreaterThan(users.length / 2);
    answers.forEach((a, i) => {
      if (!decided[i]) return;
      const expected = isCanaryBucket(stickyBucket('chat', users[i]!), 50) ? 'v2' : 'v1';
      expect([a.status, a.headers['x-fledge-reason'], a.servedBy]).toEqual([200, 'sticky', expected]);
    });
  }, 60_000);

  it('replaces a stale socket file when extproc restarts', async () => {
    await dp.extproc.kill(); // SIGKILL: no shutdown, the socket file stays behind
    expect(lstatSync(dp.extprocSocket).isSocket()).toBe(true);
    await dp.restartExtproc();
    const { answers, decided } = await dp.decided(users.slice(0, 10), (user) => dp.request({ host: 'chat', user }));
    expect(answers.filter((a, i) => decided[i] && a.headers['x-fledge-reason'] === 'sticky').length).toBeGreaterThan(5);
  }, 60_000);
});
