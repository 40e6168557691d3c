import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../common/config-error.js';
import { createLogger } from '../common/logger.js';
import type { Logger } from '../common/logger.js';
import { extprocConfigSchema, type ExtprocConfig } from '../extproc/config.js';
import { WORKER_INDEX_ENV } from '../extproc/workers/messages.js';
import { exitOnError, stopOnSignals } from './exit.js';

interface ExtprocOptions {
  config?: string;
  routingFile?: string;
  routingSource?: 'file' | 'virtualservice';
  kubeconfig?: string;
  namespace?: string;
  flagsFile?: string;
  host?: string;
  port?: number;
  listen?: string;
  adminPort?: number;
  workers?: number;
}

export function extprocCommand(): Command {
  return new Command('extproc')
    .description('Run the Envoy ext_proc server that picks the model version for every request.')
    .addOption(new Option('-c, --config <file>', 'extproc config file (YAML or JSON); see docs/extproc.md'))
    .addOption(new Option('--routing-source <source>', 'where routing state comes from (overrides routing.source)').choices(['file', 'virtualservice']))
    .addOption(new Option('--routing-file <file>', 'routing-state file (overrides routing.file; implies --routing-source file)'))
    .addOption(new Option('--kubeconfig <file>', 'kubeconfig for --routing-source virtualservice (default: $KUBECONFIG, ~/.kube/config, in-cluster)'))
    .addOption(new Option('--namespace <ns>', 'watch VirtualServices in one namespace only (default: all)'))
    .addOption(new Option('--flags-file <file>', 'flagd flag file (overrides flags.file)'))
    .addOption(new Option('--host <addr>', 'address for the gRPC and admin ports (default 127.0.0.1)'))
    .addOption(new Option('--port <n>', 'gRPC port (default 50051)').argParser(Number))
    .addOption(new Option('--listen <address>', 'gRPC listen address: unix:/path/to.sock (a Unix domain socket, for an Envoy beside extproc) or host:port'))
    .addOption(new Option('--admin-port <n>', 'admin/metrics port (default 9101)').argParser(Number))
    .addOption(new Option('--workers <n>', 'worker processes sharing the gRPC port, one event loop each (overrides workers; default 1)').argParser(Number))
    .action(async (opts: ExtprocOptions) => {
      const config = resolveConfig(opts);
      const logger = createLogger('extproc');
      // A worker of our own primary (not of some other cluster parent, e.g. a process manager's).
      if (cluster.isWorker && process.env[WORKER_INDEX_ENV] !== undefined) return runWorker(config, logger);
      if (config.workers > 1) {
        const { startExtprocWorkers } = await import('../extproc/workers/primary.js');
        const running = await startExtprocWorkers(config, logger).catch(exitOnError);
        return stopOnSignals(() => running.stop(), logger);
      }
      // Loaded here, not at the top: every fledge command would otherwise pay for gRPC and OpenFeature.
      const { startExtproc } = await import('../extproc/server.js');
      const running = await startExtproc(config, logger).catch(exitOnError);
      stopOnSignals(() => running.stop(), logger);
    });
}

/** One of `--workers N`, forked by the primary with the same command line. */
async function runWorker(config: ExtprocConfig, parent: Logger): Promise<void> {
  const index = Number(process.env[WORKER_INDEX_ENV] ?? 0);
  const logger = parent.child({ worker: index });
  const { WorkerLink } = await import('../extproc/workers/worker-link.js');
  const { startExtproc } = await import('../extproc/server.js');
  const link = new WorkerLink(index, logger);
  await link.hello();
  const running = await startExtproc(config, logger, { worker: link }).catch(async (err: unknown) => {
    await link.failed(err instanceof Error ? err.message : String(err));
    return exitOnError(err);
  });
  // A terminal's Ctrl-C reaches the primary and its workers alike, and the primary then asks too: stop once.
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= running.stop());
  stopOnSignals(stop, logger);
  // A worker whose primary is gone exits by itself: node:cluster ends it on the IPC disconnect.
}

function resolveConfig(opts: ExtprocOptions) {
  const source = opts.config ?? 'command line';
  let raw: Record<string, any> = {};
  if (opts.config) {
    try {
      raw = (parseYaml(readFileSync(opts.config, 'utf8')) as Record<string, any>) ?? {};
    } catch (err) {
      throw new ConfigError(opts.config, [{ path: '', message: (err as Error).message }]);
    }
  }
  if (opts.routingFile) raw.routing = { ...raw.routing, source: opts.routingSource ?? 'file', file: opts.routingFile };
  if (opts.routingSource) {
    raw.routing = { ...raw.routing, source: opts.routingSource };
    // A config file's routing.file does not apply to a VirtualService watch chosen on the command line.
    if (opts.routingSource === 'virtualservice' && !opts.routingFile) delete raw.routing.file;
  }
  if (opts.kubeconfig) raw.routing = { ...raw.routing, kubeconfig: opts.kubeconfig };
  if (opts.namespace) raw.routing = { ...raw.routing, namespace: opts.namespace };
  if (opts.flagsFile) raw.flags = { ...raw.flags, file: opts.flagsFile };
  if (opts.host) {
    raw.grpc = { ...raw.grpc, host: opts.host };
    raw.admin = { ...raw.admin, host: opts.host };
  }
  if (opts.port !== undefined) raw.grpc = { ...raw.grpc, port: opts.port };
  if (opts.listen !== undefined) raw.grpc = { ...raw.grpc, ...parseListen(opts.listen) };
  if (opts.adminPort !== undefined) raw.admin = { ...raw.admin, port: opts.adminPort };
  if (opts.workers !== undefined) raw.workers = opts.workers;
  const parsed = extprocConfigSchema.safeParse(raw);
  if (!parsed.success) throw ConfigError.fromZod(source, parsed.error);
  return parsed.data;
}

/** `unix:/path` → a socket; `host:port` (or `[v6]:port`) → TCP. */
export function parseListen(listen: string): { socket: string } | { host: string; port: number } {
  if (listen.startsWith('unix:')) {
    const path = listen.slice('unix:'.length);
    if (!path.startsWith('/')) throw new ConfigError('--listen', [{ path: 'listen', message: `"${listen}": a Unix socket needs an absolute path (unix:/run/fledge/extproc.sock)` }]);
    return { socket: path };
  }
  const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(listen);
  const port = Number(match?.[2]);
  if (!match || port > 65535) throw new ConfigError('--listen', [{ path: 'listen', message: `"${listen}" is neither unix:/path nor host:port` }]);
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}
