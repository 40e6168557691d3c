import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { simCommand } from '../../sim/command.js';
import type { SimHandle } from '../../sim/server.js';

const logger = createLogger('sim-test', 'silent');

describe('fledge sim command', () => {
  it('starts with knobs from a YAML file and removes its signal handlers on close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fledge-sim-'));
    const file = join(dir, 'knobs.yaml');
    writeFileSync(file, 'errorRate: 1\nerrorStatus: 502\nlatency: {kind: fixed, ms: 0}\n');
    const before = process.listenerCount('SIGTERM');
    let sim: SimHandle | undefined;
    await simCommand({ logger, onListening: (s) => (sim = s) }).parseAsync(['--port', '0', '--version', 'v9', '--knobs', file], { from: 'user' });
    expect(sim).toBeDefined();
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    const res = await fetch(`${sim!.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(502);
    expect(res.headers.get('x-model-version')).toBe('v9');
    await sim!.close();
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });

  it('refuses a bad knobs file, naming the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fledge-sim-'));
    const file = join(dir, 'knobs.json');
    writeFileSync(file, '{"tokens": {"completion": "many"}}');
    let stderr = '';
    const cmd = simCommand({ logger, onListening: () => expect.unreachable() })
      .exitOverride()
      .configureOutput({ writeErr: (s) => (stderr += s) });
    await expect(cmd.parseAsync(['--port', '0', '--knobs', file], { from: 'user' })).rejects.toMatchObject({ exitCode: 2 });
    expect(stderr).toContain('tokens.completion');
    expect(stderr).toContain(file);
  });

  it('rejects a bad port', async () => {
    const cmd = simCommand({ logger }).exitOverride().configureOutput({ writeErr: () => {} });
    await expect(cmd.parseAsync(['--port', 'eighty'], { from: 'user' })).rejects.toMatchObject({ code: 'commander.invalidArgument' });
  });
});
