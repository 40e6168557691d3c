import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { stringify as toYaml } from 'yaml';
import { z } from 'zod';
import type { LocalService } from '../traffic/envoy/routes.js';
import { routeTokenSchema } from '../../extproc/routing/state.js';
import { guardrailThresholdsSchema } from '../../extproc/guardrail/thresholds.js';

/**
 * Local mode's single source of truth for traffic: per service, which version is stable,
 * which is the candidate, its weight and mirror share, and every version's upstream. Both
 * the extproc routing file and Envoy's routes are rendered from it, so they cannot disagree.
 */
export const trafficStateSchema = z.strictObject({
  services: z.record(
    z.string(),
    z.strictObject({
      stable: z.string(),
      canary: z.string().optional(),
      canaryWeight: z.number().min(0).max(100).default(0),
      mirrorPercent: z.number().min(0).max(100).default(0),
      killed: z.boolean().default(false),
      /** The stack's secret for the per-version routes (common/route-token.ts); extproc and Envoy both get it. */
      routeToken: routeTokenSchema,
      /** The rolling-out policy's guardrail limits, while its candidate is the canary. */
      guardrail: guardrailThresholdsSchema.optional(),
      upstreams: z.record(z.string(), z.strictObject({ host: z.string(), port: z.number().int() })),
    }),
  ),
});

export type TrafficState = z.output<typeof trafficStateSchema>;
export type ServiceTraffic = TrafficState['services'][string];

/** Local stand-in for a pod-template-hash: stable per service and version, like a real one. */
export function localRolloutHash(service: string, version: string): string {
  return createHash('sha256').update(`${service}/${version}`).digest('hex').slice(0, 10);
}

export function readTrafficState(file: string): TrafficState {
  return trafficStateSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}

export function writeAtomically(file: string, text: string): void {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, text);
  renameSync(temp, file);
}

export function writeTrafficState(file: string, state: TrafficState): void {
  writeAtomically(file, `${JSON.stringify(state, null, 2)}\n`);
}

/** The extproc routing-state file (extproc/routing/state.ts's format). */
export function renderRoutingFile(state: TrafficState): string {
  const services = Object.fromEntries(
    Object.entries(state.services).map(([name, s]) => [
      name,
      {
        stable: s.stable,
        ...(s.canary ? { canary: s.canary, canaryWeight: s.canaryWeight } : {}),
        ...(s.canary && s.guardrail ? { guardrail: s.guardrail } : {}),
        ...(s.canary && s.mirrorPercent > 0 && !s.killed ? { shadowPercent: s.mirrorPercent } : {}),
        killed: s.killed,
        routeToken: s.routeToken,
        // Local Envoy's per-version routes name their version on the answer (controller/traffic/envoy/routes.ts).
        routesReportServedBy: true,
        rolloutHashes: Object.fromEntries(Object.keys(s.upstreams).map((v) => [v, localRolloutHash(name, v)])),
      },
    ]),
  );
  return toYaml({ services });
}

/**
 * Envoy's view: a token-matched header route per serving version (stable, and the canary
 * while the traffic state has one) and the weighted route at the rollout's weight. A shadow
 * share goes to extproc's routing file only: extproc sends the copies itself (docs/shadow.md).
 */
export function renderEnvoyServices(state: TrafficState): LocalService[] {
  return Object.entries(state.services).map(([name, s]) => ({
    name,
    stable: s.stable,
    canary: s.canary,
    fallbackCanaryWeight: s.killed ? 0 : s.canaryWeight,
    routeToken: s.routeToken,
    upstreams: s.upstreams,
  }));
}
