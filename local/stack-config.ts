import { z } from 'zod';
import { loadStructuredFile } from '../common/structured-file.js';

const port = z.number().int().min(1).max(65535);
const version = z.string().regex(/^[A-Za-z0-9._-]+$/, 'a version is letters, digits, dot, dash or underscore');

/** The local stack's ports; the defaults are the design card's. */
export const stackPortsSchema = z
  .strictObject({
    envoy: port.default(10000),
    envoyAdmin: port.default(9901),
    extproc: port.default(50051),
    extprocAdmin: port.default(9101),
    controllerAdmin: port.default(9102),
    prometheus: port.default(9090),
    redis: port.default(6379),
    /** The first simulated model's port; the others follow. */
    models: port.default(8001),
  })
  .prefault({});

/**
 * `fledge up`'s stack file: the services, the model versions the simulated servers play
 * (with their fault knobs), the flag file, and the ports.
 */
export const stackConfigSchema = z.strictObject({
  ports: stackPortsSchema,
  services: z
    .record(
      z.string().regex(/^[a-z0-9-]+$/, 'a service name is lower-case letters, digits and dashes'),
      z
        .strictObject({
          stable: version,
          /** version → the simulated model's knobs (see `fledge sim --help`). */
          versions: z.record(version, z.strictObject({ knobs: z.record(z.string(), z.unknown()).default({}) }).prefault({})),
        })
        .refine((s) => s.stable in s.versions, { message: 'stable must be one of versions', path: ['stable'] }),
    )
    .refine((services) => Object.keys(services).length > 0, { message: 'declare at least one service' }),
  /** A flagd flag file, relative to the stack file. */
  flags: z.string().min(1).optional(),
  /** extproc settings (its config file's shape, e.g. quality.sampling); routing and ports are the stack's. */
  extproc: z.record(z.string(), z.unknown()).optional(),
});

export type StackConfig = z.output<typeof stackConfigSchema>;
export type StackPorts = z.output<typeof stackPortsSchema>;

export function loadStackConfig(file: string): StackConfig {
  return loadStructuredFile(file, stackConfigSchema);
}

/** Every model server of the stack, with the port it gets. */
export function modelServers(config: StackConfig): { service: string; version: string; port: number; knobs: Record<string, unknown> }[] {
  let next = config.ports.models;
  return Object.entries(config.services).flatMap(([service, s]) => Object.entries(s.versions).map(([v, spec]) => ({ service, version: v, port: next++, knobs: spec.knobs })));
}
