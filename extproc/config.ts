import { z } from 'zod';
import { probeSecretSchema } from './probes/secret.js';
import { qualityConfigSchema } from './quality/config.js';
import { shadowConfigSchema } from './shadow/shadow-config.js';

/** `file`: a routing-state file watched for changes (local mode, tests). */
const fileRoutingSchema = z
  .object({
    source: z.literal('file'),
    file: z.string({ error: 'routing.file is required when routing.source is "file"' }).min(1),
  })
  .strict();

/** `virtualservice`: watch Istio VirtualServices (cluster mode); see docs/cluster-mode.md. */
const virtualServiceRoutingSchema = z
  .object({
    source: z.literal('virtualservice'),
    file: z.never({ error: 'routing.file applies only to routing.source "file"' }).optional(),
    /** A kubeconfig file; default: $KUBECONFIG, ~/.kube/config, or the in-cluster ServiceAccount. */
    kubeconfig: z.string().min(1).optional(),
    /** Watch one namespace; default: all namespaces (needs the ClusterRole in manifests/rbac.yaml). */
    namespace: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a namespace is a DNS label (lower-case letters, digits, dashes)')
      .optional(),
    /** How long extproc waits at start for the first list before giving up. */
    syncTimeoutSeconds: z.number().positive().default(30),
  })
  .strict();

/** `source` defaults to `file`, so existing configs with only `routing.file` keep working. */
export const routingConfigSchema = z.preprocess(
  (value) =>
    value && typeof value === 'object' && !Array.isArray(value) && !('source' in value) ? { ...value, source: 'file' } : value,
  z.discriminatedUnion('source', [fileRoutingSchema, virtualServiceRoutingSchema], {
    error: (issue) => (issue.code === 'invalid_union' ? 'routing.source must be "file" or "virtualservice"' : undefined),
  }),
);

export type RoutingConfig = z.output<typeof routingConfigSchema>;

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
        /**
         * A Unix domain socket path: gRPC listens there instead of on host:port (Envoy beside
         * extproc reaches it through a `pipe` address; no TCP stack, no port to expose).
         */
        socket: z.string().min(1).regex(/^\//, 'grpc.socket is an absolute path').optional(),
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
    routing: routingConfigSchema
      .optional()
      .refine((r) => r !== undefined, {
        message: 'required: set routing.file (or routing.source: virtualservice) in the config, or pass --routing-file / --routing-source',
      })
      .transform((r) => r!),
    flags: z
      .object({
        /** A flagd flag file (standard flagd JSON); omit to route by weight only. */
        file: z.string().min(1).optional(),
        versionFlag: z.string().min(1).default('inference-model-version'),
        killSwitchFlag: z.string().min(1).default('inference-kill-switch'),
        /** Request header → evaluation-context attribute. x-user-id and x-user-segment are always mapped. */
        contextHeaders: z.record(z.string().regex(/^[a-z0-9-]+$/, 'header names are lower-case'), z.string().min(1)).default({}),
        /** Flag outcomes remembered per evaluation context (least recently used out first); 0 evaluates every request. */
        cacheSize: z.number().int().min(0).default(10_000),
      })
      .strict()
      .default({ versionFlag: 'inference-model-version', killSwitchFlag: 'inference-kill-switch', contextHeaders: {}, cacheSize: 10_000 }),
    /** Response sampling and quality signals (docs/quality.md). */
    quality: qualityConfigSchema,
    /**
     * The data-plane guardrail's peer sharing (docs/extproc.md): with a Redis URL, a trip one
     * replica sees reaches every replica through pub/sub. The limits come from the routing state.
     */
    guardrail: z
      .object({
        redisUrl: z.string().min(1).optional(),
        channel: z.string().min(1).default('fledge:guardrail'),
        /** The LLM judge's scores stream (`fledge judge --scores-stream`): its verdicts feed the hallucination windows. */
        judgeScoresStream: z.string().min(1).default('fledge:judge:scores'),
      })
      .strict()
      .default({ channel: 'fledge:guardrail', judgeScoresStream: 'fledge:judge:scores' }),
    /** The golden-probe secret (docs/quality.md); without one, probe headers are ignored. */
    probes: probeSecretSchema,
    /** Shadow capture (docs/shadow.md): where copies go and where the two answers meet. */
    shadow: shadowConfigSchema,
    /**
     * Worker processes sharing the ext_proc port (node:cluster), one event loop each; the
     * primary serves the admin port for all of them (docs/extproc.md, "Processes").
     */
    workers: z.number().int().min(1).max(64).default(1),
  })
  .strict();

export type ExtprocConfig = z.output<typeof extprocConfigSchema>;
