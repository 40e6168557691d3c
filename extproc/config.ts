import { z } from 'zod';
import { loadStructuredFile } from '../common/structured-file.js';
import { qualityConfigSchema } from './quality/config.js';

/**
 * extproc's configuration file (YAML or JSON). Every field has a default, so an empty
 * file (or none) runs extproc on the local-stack ports.
 */
export const extprocConfigSchema = z
  .object({
    grpc: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(50051),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 50051 }),
    admin: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9101),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 9101 }),
    routing: z
      .object({
        /** `file`: a routing-state file watched for changes (local mode, tests). */
        source: z.literal('file').default('file'),
        file: z.string().min(1),
      })
      .strict(),
    flags: z
      .object({
        /** A flagd flag file (standard flagd JSON); omit to route by weight only. */
        file: z.string().min(1).optional(),
        versionFlag: z.string().min(1).default('inference-model-version'),
        killSwitchFlag: z.string().min(1).default('inference-kill-switch'),
        /** Request header → evaluation-context attribute. x-user-id and x-user-segment are always mapped. */
        contextHeaders: z.record(z.string().regex(/^[a-z0-9-]+$/, 'header names are lower-case'), z.string().min(1)).default({}),
      })
      .strict()
      .default({ versionFlag: 'inference-model-version', killSwitchFlag: 'inference-kill-switch', contextHeaders: {} }),
    /** Response sampling and quality signals (docs/quality.md). */
    quality: qualityConfigSchema,
  })
  .strict();

export type ExtprocConfig = z.output<typeof extprocConfigSchema>;

export function loadExtprocConfig(file: string): ExtprocConfig {
  return loadStructuredFile(file, extprocConfigSchema);
}

export function parseExtprocConfig(value: unknown): ExtprocConfig {
  return extprocConfigSchema.parse(value);
}
