import type { Logger } from '../../common/logger.js';
import { startAdminServer } from '../admin.js';
import type { RoutingConfig } from '../config.js';
import { loadProbeSecret, type ProbeSecretConfig } from '../probes/secret.js';
import { GoldenSet } from '../quality/evaluators/golden-set.js';
import { createRoutingSource } from '../routing/create-source.js';
import { Prober, probeTargets } from './prober.js';

export interface ProberAppOptions {
  routing: RoutingConfig;
  goldenFile: string;
  secret: ProbeSecretConfig;
  url: string;
  hostTemplate: string;
  ratePerVersion: number;
  allServices: boolean;
  timeoutMs: number;
  maxInFlight: number;
  adminHost: string;
  adminPort: number;
  logger: Logger;
}

/** `fledge probe`: the prober, its routing-state source and its admin port (/metrics, /readyz, /debug/state). */
export async function startProberApp(options: ProberAppOptions): Promise<{ adminPort: number; stop(): Promise<void> }> {
  const { logger } = options;
  const secret = loadProbeSecret(options.secret);
  if (secret === undefined) throw new Error(`no probe secret: set $${options.secret.secretEnv} or --secret-file (the same secret extproc verifies with)`);
  const golden = GoldenSet.load(options.goldenFile);
  if (golden.entries.length === 0) throw new Error(`${options.goldenFile}: the golden set has no entries; there is nothing to probe with`);
  const routing = createRoutingSource(options.routing, logger);
  await routing.start();
  const prober = new Prober({
    url: options.url,
    hostTemplate: options.hostTemplate,
    routing,
    entries: golden.entries,
    secret,
    ratePerVersion: options.ratePerVersion,
    allServices: options.allServices,
    timeoutMs: options.timeoutMs,
    maxInFlight: options.maxInFlight,
    ttlSeconds: 30,
    logger,
  });
  const admin = await startAdminServer(
    options.adminHost,
    options.adminPort,
    { registry: prober.registry, ready: () => routing.ready(), debugState: () => ({ targets: probeTargets(routing.snapshot(), options.allServices), goldenFile: options.goldenFile, entries: golden.entries.length }) },
    logger,
  );
  prober.start();
  logger.info({ url: options.url, goldenFile: options.goldenFile, entries: golden.entries.length, ratePerVersion: options.ratePerVersion, adminPort: admin.port }, 'prober started');
  return {
    adminPort: admin.port,
    async stop() {
      await prober.stop();
      routing.stop();
      await new Promise<void>((resolve) => admin.server.close(() => resolve()));
      admin.server.closeAllConnections();
    },
  };
}
