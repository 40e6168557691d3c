import { z } from 'zod';

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

const version = z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'a version is letters, digits, dot, dash or underscore');

export const serviceRoutingSchema = z
  .object({
    stable: version,
    canary: version.optional(),
    canaryWeight: z.number().min(0).max(100).default(0),
    killed: z.boolean().default(false),
    hosts: z.array(z.string().min(1)).default([]),
    rolloutHashes: z.record(z.string(), z.string().min(1)).default({}),
  })
  .strict()
  .refine((s) => s.canary === undefined || s.canary !== s.stable, { message: 'canary must differ from stable', path: ['canary'] });

export const routingFileSchema = z
  .object({ services: z.record(z.string().min(1), serviceRoutingSchema).default({}) })
  .strict();

export type RoutingFile = z.output<typeof routingFileSchema>;

export function hashFor(state: ServiceRouting, version: string): string {
  return state.rolloutHashes[version] ?? version;
}
