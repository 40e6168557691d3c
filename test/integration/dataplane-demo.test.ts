import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { DemoSummary } from '../../local/dataplane-demo.js';
import { freePort, freePortRun } from '../../local/ports.js';
import { CLI } from '../harness/dataplane.js';

const run = promisify(execFile);

describe('fledge demo (data plane)', () => {
  it('routes by flag, then by sticky weight, then kills, then fails open, without a failed request', async () => {
    const ports = await Promise.all(Array.from({ length: 5 }, () => freePort()));
    // The demo's two models take this port and the next.
    const modelPort = await freePortRun(2);
    const args = [CLI, 'demo', '--data-plane', '--json', '--envoy-port', `${ports[0]}`, '--envoy-admin-port', `${ports[1]}`, '--extproc-port', `${ports[2]}`, '--extproc-admin-port', `${ports[3]}`, '--model-port', `${modelPort}`];
    const { stdout } = await run(process.execPath, args, { timeout: 120_000 });
    const summary = JSON.parse(stdout) as DemoSummary;
    const phase = (name: string) => summary.phases.find((p) => p.phase === name)!;

    for (const p of summary.phases) expect(p.failed, p.phase).toBe(0);
    expect(phase('seed-flag').bySegment!.internal).toEqual({ 'v1.3': 40 });
    expect(phase('seed-flag').bySegment!.pro).toEqual({ 'v1.2': expect.any(Number) });
    for (const weight of [10, 25, 50]) {
      const p = phase(`weight-${weight}`);
      expect(Math.abs(p.canaryUserShare! - weight)).toBeLessThanOrEqual(3);
      expect(p.usersMovedBack).toBe(0);
    }
    expect(phase('kill-switch').byVersion).toEqual({ 'v1.2': 1000 });
    expect(phase('extproc-down').byVersion).toEqual({ 'v1.2': 200 });
  });
});
