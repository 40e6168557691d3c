import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProcess, type ManagedProcess } from './child-process.js';
import { freePort } from './ports.js';

export interface RunningRedis {
  url: string;
  port: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** Debian's package installs it on the PATH; FLEDGE_REDIS overrides. */
export function redisBinary(): string {
  return process.env.FLEDGE_REDIS ?? 'redis-server';
}

/** A real redis-server (Debian's package) on loopback (a free port by default), no persistence. */
export async function startRedis(options: { port?: number } = {}): Promise<RunningRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-redis-'));
  const port = options.port ?? (await freePort());
  const proc = startProcess(
    'redis',
    redisBinary(),
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    join(dir, 'redis.log'),
  );
  const deadline = Date.now() + 15_000;
  while (!(await ping(port))) {
    if (proc.child.exitCode !== null) throw new Error(`redis-server exited before it was ready:\n${proc.logTail()}`);
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`redis-server not ready on ${port}:\n${proc.logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: proc,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Readiness check: the server answers PING with PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(500);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      socket.destroy();
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      resolve(false);
      socket.destroy();
    });
  });
}
