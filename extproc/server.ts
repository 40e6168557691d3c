import type { Http2Server, ServerHttp2Session, ServerOptions as Http2ServerOptions } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { OpenFeature, type EvaluationContext } from '@openfeature/server-sdk';
import type { Logger } from '../common/logger.js';
import { externalProcessorService, type ProcessingRequest, type ProcessingResponse } from '../proto/ext-proc.js';
import { startAdminServer, type AdminHandlers } from './admin.js';
import type { ExtprocConfig } from './config.js';
import { FlagdFileProvider } from './flags/flagd-file-provider.js';
import { VersionFlags } from './flags/version-flags.js';
import { FlagOutcomeCache } from './flags/flag-outcome-cache.js';
import { startGuardrail } from './guardrail/start.js';
import { ExtprocMetrics } from './metrics.js';
import { createRoutingSource } from './routing/create-source.js';
import type { RoutingStateSource } from './routing/state.js';
import { ProbeVerifier } from './probes/probe-token.js';
import { loadProbeSecret } from './probes/secret.js';
import { coverageReport } from './quality/coverage-report.js';
import { JudgeQueue } from './quality/judge-queue.js';
import { startQualityPipeline } from './quality/pipeline.js';
import { startShadowCapture, type ShadowCapture } from './shadow/shadow-capture.js';
import { shadowUnavailable } from './shadow/shadow-config.js';
import { ShadowMetrics } from './shadow/shadow-metrics.js';
import { handleProcessStream, type StreamDeps } from './stream.js';
import { removeStaleSocket } from './listen-socket.js';
import { shareNonces } from './workers/nonce-sharing.js';
import type { WorkerLink } from './workers/worker-link.js';

export interface RunningExtproc {
  /** The TCP port, or 0 when listening on a Unix socket. */
  grpcPort: number;
  /** What gRPC listens on, as grpc-js names it: `host:port` or `unix:/path`. */
  grpcAddress: string;
  /** 0 in a worker of `--workers N`: the primary serves the admin port. */
  adminPort: number;
  /** What every stream is answered with (the in-process hot-path benchmark drives it directly). */
  streamDeps: StreamDeps;
  stop(): Promise<void>;
}

const DEFAULT_CONTEXT_HEADERS: Record<string, string> = { 'x-user-id': 'targetingKey', 'x-user-segment': 'segment' };
const OPENFEATURE_DOMAIN = 'fledge-extproc';

export interface ExtprocOptions {
  /**
   * Set in a worker of `fledge extproc --workers N`: the ext_proc port is shared through the
   * primary, which serves the admin port from the workers' answers over this link.
   */
  worker?: WorkerLink;
}

/** Starts the ext_proc gRPC server and its admin port from a validated config. */
export async function startExtproc(config: ExtprocConfig, logger: Logger, options: ExtprocOptions = {}): Promise<RunningExtproc> {
  const { worker } = options;
  const metrics = new ExtprocMetrics();
  // Each worker's series carry its number: a restarted worker resets only its own counters
  // (Prometheus sees a reset, not a drop in a sum), and sum()/max() read them as replicas'.
  if (worker) metrics.registry.setDefaultLabels({ worker: String(worker.index) });
  const probeSecret = loadProbeSecret(config.probes);
  const routing: RoutingStateSource = createRoutingSource(config.routing, logger);
  await routing.start();

  let flagProvider: FlagdFileProvider | undefined;
  let flagCache: FlagOutcomeCache | undefined;
  if (config.flags.file) {
    flagProvider = new FlagdFileProvider(config.flags.file, logger);
    await OpenFeature.setProviderAndWait(OPENFEATURE_DOMAIN, flagProvider);
    const flags = new VersionFlags(config.flags.versionFlag, config.flags.killSwitchFlag, OPENFEATURE_DOMAIN, flagProvider);
    flagCache = new FlagOutcomeCache(config.flags.cacheSize, flagProvider, (ctx, versions) => flags.evaluate(ctx, versions));
  }

  if (probeSecret !== undefined) logger.info('golden probes: probe headers are verified with the configured secret');
  const guardrail = await startGuardrail(config.guardrail, routing, metrics, logger, worker);
  const quality = config.quality.enabled
    ? startQualityPipeline(config.quality, metrics.registry, logger, (labels, hallucinated) =>
        guardrail.observe('hallucinations', { service: labels.service, version: labels.version, rolloutHash: labels.rollout_hash }, hallucinated),
      )
    : undefined;
  const shadowMetrics = new ShadowMetrics(metrics.registry);
  const shadowOff = shadowUnavailable(config.shadow, probeSecret !== undefined, quality !== undefined);
  let warnedShadowOff = false;
  const judge = config.quality.judge;
  // The LLM judge configured: shadow pairs are offered to its pairwise judgement too.
  const pairJudge =
    shadowOff === undefined && judge.redisUrl !== undefined
      ? { queue: new JudgeQueue(judge.redisUrl, judge.pairStream, judge.maxLength, logger.child({ part: 'shadow' }), (result) => shadowMetrics.judgeOffers.inc({ result }), judge.pairTtlSeconds), maxTextChars: judge.maxTextChars }
      : undefined;
  const capture: ShadowCapture | undefined =
    shadowOff === undefined ? startShadowCapture({ config: config.shadow, secret: probeSecret!, maxBodyBytes: config.quality.maxBodyBytes, ...(quality ? { readJson: quality.readJson, describe: quality.describe } : {}), metrics: shadowMetrics, logger, ...(pairJudge ? { pairJudge } : {}) }) : undefined;
  if (capture) logger.info({ via: config.shadow.via, noiseShare: config.shadow.noiseShare, pairJudgeStream: pairJudge ? judge.pairStream : null }, 'shadow capture on: shadow steps copy requests through the proxy and pair the answers');
  const contextHeaders = new Map(Object.entries({ ...DEFAULT_CONTEXT_HEADERS, ...config.flags.contextHeaders }));
  const server = new grpc.Server({ 'grpc.max_concurrent_streams': 10_000 });
  // Built once: every stream (one per request) shares it.
  const streamDeps: StreamDeps = {
    routing,
    evaluateFlags: flagCache ? (ctx: EvaluationContext, versions: readonly string[]) => flagCache.outcome(ctx, versions) : undefined,
    contextHeaders,
    random: Math.random,
    probes: probeSecret === undefined ? undefined : new ProbeVerifier(probeSecret),
    onProbeRejected: (reason: string) => metrics.probeRejected.inc({ reason }),
    guardrail: guardrail.guardrail,
    shadow: {
      verifier: probeSecret === undefined ? undefined : new ProbeVerifier(probeSecret, Date.now, 100_000, 'shadow'),
      capture,
      noiseShare: config.shadow.noiseShare,
      random: Math.random,
      onUnavailable: (ticket: Parameters<typeof shadowMetrics.countCapture>[0]) => {
        shadowMetrics.countCapture(ticket, 'stable', 'unavailable');
        if (!warnedShadowOff) logger.warn({ service: ticket.service, why: shadowOff }, 'a shadow step is running but shadow capture is off: no pairs are compared and the shadow analysis will pause');
        warnedShadowOff = true;
      },
    },
    metrics,
    logger,
    quality,
  };
  const processStream: grpc.handleBidiStreamingCall<ProcessingRequest, ProcessingResponse> = (call) => handleProcessStream(call, streamDeps);
  server.addService(externalProcessorService, { Process: processStream as grpc.UntypedHandleCall });
  widenFlowControl(server, logger);
  if (worker) shareNonces(worker, { probe: streamDeps.probes, shadow: streamDeps.shadow?.verifier });
  const socket = config.grpc.socket;
  // A worker's listen goes through the primary, which has cleared the path already.
  if (socket !== undefined && !worker) removeStaleSocket(socket);
  const bindTo = socket !== undefined ? `unix:${socket}` : `${config.grpc.host}:${config.grpc.port}`;
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(bindTo, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(new Error(`extproc cannot listen on ${bindTo}: ${err.message}`)) : resolve(port)));
  });
  widenConnectionWindows(server, logger);
  const grpcPort = socket !== undefined ? 0 : boundPort;
  const grpcAddress = socket !== undefined ? bindTo : `${config.grpc.host}:${grpcPort}`;
  logger.info({ address: grpcAddress }, 'ext_proc gRPC listening');

  const handlers: AdminHandlers = {
    registry: metrics.registry,
    ready: () => routing.ready(),
    debugState: () => ({
      services: routing.snapshot(),
      routingGeneration: routing.generation,
      routing: routing.diagnostics?.() ?? { source: config.routing.source },
      guardrail: { trips: guardrail.guardrail.list(), peers: config.guardrail.redisUrl ? { channel: config.guardrail.channel } : null },
      flags: flagProvider ? { file: flagProvider.file, generation: flagProvider.generation, lastError: flagProvider.lastError ?? null } : null,
    }),
    coverage: async () => coverageReport({ config: config.quality, golden: quality?.golden, probeSecretConfigured: probeSecret !== undefined, probesSeen: await probesSeen(metrics), shadowCapture: capture !== undefined }),
  };
  let admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  if (worker) {
    const index = worker.index;
    worker.serve({
      ready: handlers.ready,
      state: async () => ({ ...(handlers.debugState() as object), worker: { index, pid: process.pid, decisions: await decisionsMade(metrics) } }),
      coverage: handlers.coverage,
      metrics: () => metrics.registry.getMetricsAsJSON(),
    });
    worker.listening(grpcAddress);
  } else {
    admin = await startAdminServer(config.admin.host, config.admin.port, handlers, logger);
  }

  return {
    grpcPort,
    grpcAddress,
    adminPort: admin?.port ?? 0,
    streamDeps,
    async stop() {
      routing.stop();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      if (admin) {
        await new Promise<void>((resolve) => admin.server.close(() => resolve()));
        admin.server.closeAllConnections();
      }
      if (flagProvider) await OpenFeature.close();
      await quality?.close();
      await capture?.close();
      await guardrail.close();
    },
  };
}

/**
 * HTTP/2 receive windows large enough for a sampled body in one go. With Node's defaults
 * (64 KiB a stream and a connection) Envoy can send a megabyte body only 64 KiB per round
 * trip of WINDOW_UPDATEs, and every other request's ext_proc message on that connection waits
 * behind it. grpc-js has no option for either window, so its (pinned) server internals are
 * reached here: should they change, extproc warns and serves with Node's defaults, and
 * test/unit/extproc-flow-control.test.ts fails.
 */
export const STREAM_WINDOW_BYTES = 2 * 1024 * 1024;
export const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/** The stream window, in the settings grpc-js hands to each HTTP/2 server it creates (before bind). */
export function widenFlowControl(server: grpc.Server, logger?: Logger): boolean {
  const options = (server as unknown as { commonServerOptions?: Http2ServerOptions }).commonServerOptions;
  if (options === undefined) {
    logger?.warn('@grpc/grpc-js has no Server.commonServerOptions any more: HTTP/2 stream windows stay at 64 KiB (large bodies slow other decisions)');
    return false;
  }
  options.settings = { ...options.settings, initialWindowSize: STREAM_WINDOW_BYTES };
  return true;
}

/** The connection window, on each connection as it opens (after bind: the HTTP/2 servers exist then). */
export function widenConnectionWindows(server: grpc.Server, logger?: Logger): boolean {
  const servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  if (servers === undefined || servers.size === 0) {
    logger?.warn('@grpc/grpc-js has no Server.http2Servers any more: HTTP/2 connection windows stay at 64 KiB (large bodies slow other decisions)');
    return false;
  }
  for (const http2Server of servers.keys()) {
    http2Server.on('session', (session: ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
      } catch (err) {
        logger?.debug({ err: (err as Error).message }, 'could not widen a closing HTTP/2 connection window');
      }
    });
  }
  return true;
}

/** Routing decisions this process made (a worker's share of the traffic, on the primary's /debug/state). */
async function decisionsMade(metrics: ExtprocMetrics): Promise<number> {
  return (await metrics.decisions.get()).values.reduce((sum, v) => sum + v.value, 0);
}

/** Verified probes answered per service, summed over versions and status classes. */
async function probesSeen(metrics: ExtprocMetrics): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (const v of (await metrics.probeRequests.get()).values) {
    const service = String(v.labels.service ?? '');
    seen[service] = (seen[service] ?? 0) + v.value;
  }
  return seen;
}
