import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPrometheus, type RunningPrometheus } from '../harness/prometheus.js';
import { startRedis, type RunningRedis } from '../harness/redis.js';

describe('the real Prometheus and Redis the harness starts', () => {
  let prometheus: RunningPrometheus;
  let redis: RunningRedis;
  let target: Server;
  let value = 7;

  beforeAll(async () => {
    target = createServer((_req, res) => res.end(`# TYPE fledge_harness_probe gauge\nfledge_harness_probe ${value}\n`));
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const port = (target.address() as AddressInfo).port;
    [prometheus, redis] = await Promise.all([startPrometheus([`127.0.0.1:${port}`], 500), startRedis()]);
  });
  afterAll(async () => {
    await prometheus?.stop();
    await redis?.stop();
    target?.close();
  });

  it('scrapes a target and answers PromQL with what it served', async () => {
    await prometheus.waitForScrapes();
    expect(await prometheus.query('fledge_harness_probe')).toEqual([7]);
    value = 11;
    await prometheus.waitForScrapes();
    expect(await prometheus.query('fledge_harness_probe * 2')).toEqual([22]);
  });

  it('stores and reads back through ioredis', async () => {
    const client = new Redis(redis.url);
    await client.xadd('fledge:probe', '*', 'k', 'v');
    expect(await client.xlen('fledge:probe')).toBe(1);
    client.disconnect();
  });
});
