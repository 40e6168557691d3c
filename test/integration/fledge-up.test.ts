import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { portInUse } from '../../local/ports.js';
import { freeStackPorts } from '../harness/stack-ports.js';
import { CLI } from '../harness/dataplane.js';
import { chat } from '../harness/http-client.js';

const dir = mkdtempSync(join(tmpdir(), 'fledge-up-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function stackFile(name: string): Promise<{ file: string; ports: Record<string, number> }> {
  const ports: Record<string, number> = await freeStackPorts(1);
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, toYaml({ ports, services: { chat: { stable: 'v1', versions: { v1: { knobs: { latency: { kind: 'fixed', ms: 1 } } } } } } }));
  return { file, ports };
}

interface Run {
  code: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
  waitFor: (text: string, timeoutMs?: number) => Promise<void>;
  signal: (s: NodeJS.Signals) => void;
}

function up(args: string[], env: NodeJS.ProcessEnv = process.env): Run {
  const child = spawn(process.execPath, [CLI, 'up', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return {
    code,
    stdout: () => out,
    stderr: () => err,
    signal: (s) => child.kill(s),
    async waitFor(text, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (!out.includes(text)) {
        if (child.exitCode !== null) throw new Error(`fledge up exited (${child.exitCode}) before printing "${text}":\n${out}\n${err}`);
        if (Date.now() > deadline) throw new Error(`fledge up did not print "${text}" in ${timeoutMs} ms:\n${out}\n${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

async function allFree(ports: Record<string, number>): Promise<boolean> {
  for (const port of Object.values(ports)) if (await portInUse(port)) return false;
  return true;
}

describe('fledge up', () => {
  it('starts every component with one line each, serves traffic, and stops everything on Ctrl-C', async () => {
    const { file, ports } = await stackFile('ok');
    const run = up(['--stack', file, '--state-dir', join(dir, 'state-ok')]);
    await run.waitFor('fledge local stack is up');
    for (const name of ['redis', 'model chat/v1', 'extproc', 'envoy', 'prometheus']) expect(run.stdout()).toMatch(new RegExp(`^up  ${name} `, 'm'));
    const answer = await chat(ports.envoy!, { host: 'chat', user: 'alice' });
    expect(answer.status).toBe(200);
    expect(answer.headers['x-fledge-reason']).toBe('no-canary');
    run.signal('SIGINT');
    expect(await run.code).toBe(0);
    expect(await allFree(ports)).toBe(true);
  });

  it('with --rollouts also runs the local controller, which starts the rollout; Ctrl-C stops it too', async () => {
    const { file, ports } = await stackFile('rollouts');
    const stateDir = join(dir, 'state-rollouts');
    const rollouts = join(dir, 'rollouts-file.yaml');
    writeFileSync(rollouts, toYaml({ rollouts: [{ name: 'chat-v1', service: 'chat', candidate: 'v1' }] }));
    const run = up(['--stack', file, '--state-dir', stateDir, '--rollouts', rollouts, '--time-scale', '60']);
    await run.waitFor('fledge local stack is up');
    expect(run.stdout()).toMatch(/^up  prometheus .*\n^up  controller .*local mode.*time scale 60/m);
    expect(run.stdout()).toContain(`fledge status --state-dir ${stateDir} --watch`);
    const health = await fetch(`http://127.0.0.1:${ports.controllerAdmin}/readyz`);
    expect(health.status).toBe(200);
    // v1 is the stack's only (stable) version: the controller says so in the status file.
    const status = JSON.parse(readFileSync(join(stateDir, 'rollouts', 'chat-v1.json'), 'utf8')) as { phase: string; message: string };
    expect(status).toMatchObject({ phase: 'Invalid', message: 'candidate v1 is already the stable version of chat' });
    run.signal('SIGINT');
    expect(await run.code).toBe(0);
    expect(await allFree(ports)).toBe(true);
  });

  it('names a port that is taken, exits non-zero and starts nothing', async () => {
    const { file, ports } = await stackFile('taken');
    const squatter = createServer().listen(ports.envoy, '127.0.0.1');
    await new Promise((r) => squatter.once('listening', r));
    try {
      const run = up(['--stack', file, '--state-dir', join(dir, 'state-taken')]);
      expect(await run.code).toBe(1);
      expect(run.stderr()).toContain(`port ${ports.envoy} (Envoy listener) is already in use`);
      expect(run.stderr()).toContain('ports.envoy');
      expect(run.stderr()).not.toMatch(/\n\s+at /); // no stack trace
      const { envoy: _taken, ...others } = ports;
      expect(await allFree(others)).toBe(true);
    } finally {
      squatter.close();
    }
  });

  it('says Envoy is missing and which make target installs it', async () => {
    const { file, ports } = await stackFile('no-envoy');
    const run = up(['--stack', file, '--state-dir', join(dir, 'state-no-envoy')], { ...process.env, FLEDGE_ENVOY: join(dir, 'no-such-envoy') });
    expect(await run.code).toBe(1);
    expect(run.stderr()).toContain('Envoy is missing');
    expect(run.stderr()).toContain("run 'make envoy'");
    expect(run.stderr()).not.toMatch(/\n\s+at /);
    expect(await allFree(ports)).toBe(true);
  });

  it('rejects a bad stack file with the file, the field and the reason', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, toYaml({ services: { chat: { stable: 'v9', versions: { v1: {} } } } }));
    const run = up(['--stack', file]);
    expect(await run.code).toBe(2);
    expect(run.stderr()).toContain(`invalid ${file}`);
    expect(run.stderr()).toContain('services.chat.stable: stable must be one of versions');
  });

  it('refuses to start a rollout whose policy reads quality no evaluator produces: no golden coverage, default policy', async () => {
    const ports = await freeStackPorts(2);
    const golden = join(dir, 'other-service-golden.yaml');
    writeFileSync(golden, toYaml({ entries: [{ id: 'x', service: 'search', prompt: 'What is 2+2?', expect: { number: { value: 4 } } }] }));
    const file = join(dir, 'uncovered.yaml');
    const versions = { v1: { knobs: { latency: { kind: 'fixed', ms: 1 } } }, v2: { knobs: { latency: { kind: 'fixed', ms: 1 } } } };
    writeFileSync(file, toYaml({ ports, services: { chat: { stable: 'v1', versions } }, probes: { goldenFile: golden } }));
    const rollouts = join(dir, 'uncovered-rollouts.yaml');
    writeFileSync(rollouts, toYaml({ rollouts: [{ service: 'chat', candidate: 'v2', policy: 'default' }] }));
    const run = up(['--stack', file, '--rollouts', rollouts, '--state-dir', join(dir, 'uncovered-state')]);
    expect(await run.code).toBe(2);
    expect(run.stderr()).toContain(`invalid ${rollouts}`);
    expect(run.stderr()).toContain('rollouts[0] (chat-v2): policy "default" metric quality-score reads inference_quality_score');
    expect(run.stderr()).toContain('metric hallucination-rate reads inference_hallucination_total');
    expect(run.stderr()).toContain('for service "chat"');
    // Nothing was started: the ports are still free.
    expect(await portInUse(ports.envoy!)).toBe(false);
  });
});
