import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { LocalService } from '../../controller/traffic/envoy/routes.js';
import { EnvoyRouteFile } from '../../controller/traffic/envoy/route-file.js';
import { startEnvoy, type RunningEnvoy } from '../../local/envoy.js';
import { freePort } from '../../local/ports.js';
import { startSim } from '../../sim/server.js';
import { chat, mapLimit } from '../harness/http-client.js';

type Sim = Awaited<ReturnType<typeof startSim>>;

describe('local Envoy routes through file-based RDS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-rds-'));
  let envoy: RunningEnvoy;
  let routes: EnvoyRouteFile;
  let v1: Sim;
  let v2: Sim;
  let service: (over: Partial<LocalService>) => LocalService;

  beforeAll(async () => {
    const logger = pino({ level: 'silent' });
    v1 = await startSim({ host: '127.0.0.1', port: 0, version: 'v1', logger, knobs: { latency: { kind: 'fixed', ms: 1 } } });
    v2 = await startSim({ host: '127.0.0.1', port: 0, version: 'v2', logger, knobs: { latency: { kind: 'fixed', ms: 1 } } });
    service = (over) => ({ name: 'chat', stable: 'v1', canary: 'v2', upstreams: { v1: { host: '127.0.0.1', port: v1.port }, v2: { host: '127.0.0.1', port: v2.port } }, ...over });
    const adminPort = await freePort();
    routes = new EnvoyRouteFile(join(dir, 'routes.json'), `http://127.0.0.1:${adminPort}`);
    const first = routes.write([service({})]);
    envoy = await startEnvoy({ listenPort: await freePort(), adminPort, services: [service({})], routesFile: routes.file }, dir);
    await routes.waitApplied(first);
  });
  afterAll(async () => {
    await envoy?.process.stop();
    await v1?.close();
    await v2?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const port = () => Number(new URL(envoy.listenUrl).port);
  const served = async (n: number) => (await mapLimit(Array.from({ length: n }), 16, () => chat(port(), { host: 'chat' }))).map((a) => a.servedBy);

  it('moves the weighted route without a restart, and Envoy reports the version in force', async () => {
    expect(new Set(await served(50))).toEqual(new Set(['v1']));
    const version = await routes.apply([service({ fallbackCanaryWeight: 100 })]);
    expect(await routes.appliedVersion()).toBe(version);
    expect(new Set(await served(50))).toEqual(new Set(['v2']));
    await routes.apply([service({ fallbackCanaryWeight: 50 })]);
    const half = (await served(400)).filter((v) => v === 'v2').length;
    expect(half).toBeGreaterThan(140);
    expect(half).toBeLessThan(260);
  });

});
