import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../../common/config-error.js';

/** Where the probe secret shared by the prober and extproc comes from (both read the same settings). */
export const probeSecretSchema = z
  .strictObject({
    /** A file holding the secret (e.g. a mounted Kubernetes Secret); wins over the variable. */
    secretFile: z.string().min(1).optional(),
    /** An environment variable holding the secret. */
    secretEnv: z.string().min(1).default('FLEDGE_PROBE_SECRET'),
  })
  .prefault({});

export type ProbeSecretConfig = z.output<typeof probeSecretSchema>;

/** At least 128 bits of key material, written as 32 or more characters (e.g. hex). */
export const MIN_SECRET_CHARS = 32;

/**
 * The secret, or undefined when none is configured (probes are then off: every probe
 * header is ignored). A secret that is configured but unreadable or short is an error.
 */
export function loadProbeSecret(config: ProbeSecretConfig, env: NodeJS.ProcessEnv = process.env): string | undefined {
  let secret: string | undefined;
  let where: string;
  if (config.secretFile !== undefined) {
    where = config.secretFile;
    try {
      secret = readFileSync(config.secretFile, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(config.secretFile, [{ path: '', message: `cannot read the probe secret: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
    }
  } else {
    where = `$${config.secretEnv}`;
    secret = env[config.secretEnv]?.trim();
    if (secret === undefined || secret === '') return undefined;
  }
  if (secret.length < MIN_SECRET_CHARS) {
    throw new ConfigError(where, [{ path: '', message: `the probe secret has ${secret.length} characters; at least ${MIN_SECRET_CHARS} are needed (e.g. openssl rand -hex 32)` }]);
  }
  return secret;
}
