import { z } from 'zod';
import { ConfigError } from '../../common/config-error.js';
import { ROUTE_TOKEN_PATTERN } from '../../common/route-token.js';
import { parseStructured } from '../../common/structured-file.js';
import { guardrailThresholdsSchema, type GuardrailThresholds } from '../guardrail/thresholds.js';

/** What extproc must know about one service to route a request. */
export interface ServiceRouting {
  service: string;
  stable: string;
  canary?: string;
  /** Percent of keyed users (0..100) assigned to the canary. */
  canaryWeight: number;
  /** Forces stable for everyone, beating flags and weights. */
  killed: boolean;
  /** Each version's rollout hash (pod-template-hash); the version name when unknown. */
  rolloutHashes: Record<string, string>;
  /**
   * The secret the per-version routes match besides x-fledge-version (sent as
   * x-fledge-route-token): only extproc knows it, so a client cannot pick a version.
   * Without it extproc's choice cannot select a per-version route (the weights serve).
   */
  routeToken?: string;
  /**
   * The per-version routes set x-fledge-served-by on their responses (fledge's routes do:
   * local Envoy's, and the controller's fledge-<subset> routes). Then an answer to a request
   * extproc routed that lacks it came by the weighted route (the proxy's routes lag extproc's
   * state), and is not counted as the version extproc chose.
   */
  routesReportServedBy?: boolean;
  /** The canary's hard limits from the rollout's policy (extproc/guardrail/); absent = no guardrail. */
  guardrail?: GuardrailThresholds;
  /**
   * Shadow step: percent of the stable's user requests whose copy extproc sends to the
   * canary (extproc/shadow/); the canary serves no user for it. Absent or 0 = no shadow.
   */
  shadowPercent?: number;
}

/** The routing state source: a file (local mode) or a VirtualService watch (cluster mode). */
export interface RoutingStateSource {
  /** Resolves a host (port and -shadow already stripped) to its routing state. */
  lookup(host: string): ServiceRouting | undefined;
  /** Every known service, for /debug and for tests. */
  snapshot(): ServiceRouting[];
  /** Resolves once the first good state is loaded; rejects if it cannot be. */
  start(): Promise<void>;
  stop(): void;
  /** Counts good loads of the state, so a reader can tell that a change was seen. */
  readonly generation: number;
  /** True once the first good state is in force. */
  ready(): boolean;
  /** Source-specific detail for /debug/state (e.g. skipped objects, last error). */
  diagnostics?(): Record<string, unknown>;
}

export const routeTokenSchema = z.string().regex(ROUTE_TOKEN_PATTERN, 'a route token is at least 32 lower-case hex digits (128 bits)');

const version = z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'a version is letters, digits, dot, dash or underscore');

export const serviceRoutingSchema = z
  .object({
    stable: version,
    canary: version.optional(),
    canaryWeight: z.number().min(0).max(100).default(0),
    killed: z.boolean().default(false),
    hosts: z.array(z.string().min(1)).default([]),
    rolloutHashes: z.record(z.string(), z.string().min(1)).default({}),
    routeToken: routeTokenSchema.optional(),
    routesReportServedBy: z.boolean().default(false),
    guardrail: guardrailThresholdsSchema.optional(),
    shadowPercent: z.number().min(0).max(100).default(0),
  })
  .strict()
  .refine((s) => s.canary === undefined || s.canary !== s.stable, { message: 'canary must differ from stable', path: ['canary'] });

/**
 * A routing file must list its services: an empty or services-less file is what a
 * half-finished write or a broken config tool leaves, and is rejected like a malformed one
 * (the last good state stays). A file meant to route nothing says so: `empty: true`.
 */
export const routingFileSchema = z
  .object({
    services: z.record(z.string().min(1), serviceRoutingSchema).optional(),
    empty: z.boolean().optional(),
  })
  .strict()
  .superRefine((file, ctx) => {
    const count = Object.keys(file.services ?? {}).length;
    if (file.empty === true && count > 0) ctx.addIssue({ code: 'custom', path: ['empty'], message: `empty: true but ${count} service(s) listed; remove one or the other` });
    if (file.empty !== true && count === 0) {
      ctx.addIssue({ code: 'custom', path: ['services'], message: 'no services: a routing file that routes nothing must say `empty: true` (an empty file is taken for a half-finished write)' });
    }
  })
  .transform((file) => ({ services: file.services ?? {}, empty: file.empty === true }));

export type RoutingFile = z.output<typeof routingFileSchema>;

/** Parses a routing file's text; a zero-byte (or blank) file is an error, not "no services". */
export function parseRoutingFile(text: string, source: string): RoutingFile {
  if (text.trim() === '') throw new ConfigError(source, [{ path: '', message: 'the file is empty (a half-finished write?); a routing file that routes nothing says `empty: true`' }]);
  return parseStructured(text, routingFileSchema, source);
}

export function hashFor(state: ServiceRouting, version: string): string {
  return state.rolloutHashes[version] ?? version;
}
