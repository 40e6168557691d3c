import { Command, Option } from 'commander';
import { createLogger } from '../common/logger.js';
import { routingConfigSchema } from '../extproc/config.js';
import { DEFAULT_GOLDEN_FILE } from '../local/golden-files.js';
import { exitOnError, stopOnSignals } from './exit.js';

interface ProbeOptions {
  routingFile?: string;
  routingSource?: 'file' | 'virtualservice';
  kubeconfig?: string;
  namespace?: string;
  goldenFile: string;
  url: string;
  hostTemplate: string;
  rate: number;
  allServices?: boolean;
  timeout: number;
  maxInFlight: number;
  secretFile?: string;
  secretEnv: string;
  host: string;
  adminPort: number;
}

const positive = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`expected a positive number, got ${v}`);
  return n;
};

export function probeCommand(): Command {
  return new Command('probe')
    .description(
      'Run the golden prober: send golden-set prompts to every version of each service under rollout through Envoy, ' +
        'each signed for its version (x-fledge-probe), so extproc pins it there and scores the answer (docs/quality.md). ' +
        'Versions come from the routing state extproc reads: a routing file, or VirtualService annotations.',
    )
    .addOption(new Option('--routing-source <source>', 'where the versions to probe come from').choices(['file', 'virtualservice']).default('file'))
    .addOption(new Option('--routing-file <file>', 'routing-state file (local mode: <state-dir>/routing.yaml)'))
    .addOption(new Option('--kubeconfig <file>', 'kubeconfig for --routing-source virtualservice (default: $KUBECONFIG, ~/.kube/config, in-cluster)'))
    .addOption(new Option('--namespace <ns>', 'watch VirtualServices in one namespace only (default: all)'))
    .addOption(new Option('--golden-file <file>', 'golden set (the same file extproc is configured with)').default(DEFAULT_GOLDEN_FILE))
    .addOption(new Option('--url <url>', 'where probes are sent: the Envoy listener, ingress gateway or the mesh').default('http://127.0.0.1:10000'))
    .addOption(new Option('--host-template <host>', 'Host header per service; {service} is replaced').default('{service}'))
    .addOption(new Option('--rate <n>', 'probes per second per version').default(0.2).argParser(positive))
    .addOption(new Option('--all-services', 'also probe services with no rollout (their stable)'))
    .addOption(new Option('--timeout <ms>', 'per probe').default(30_000).argParser(positive))
    .addOption(new Option('--max-in-flight <n>', 'probes of one version in flight at once').default(4).argParser(positive))
    .addOption(new Option('--secret-file <file>', 'file holding the probe secret (wins over --secret-env)'))
    .addOption(new Option('--secret-env <var>', 'environment variable holding the probe secret').default('FLEDGE_PROBE_SECRET'))
    .addOption(new Option('--host <addr>', 'admin/metrics address').default('127.0.0.1'))
    .addOption(new Option('--admin-port <n>', 'admin/metrics port').default(9104).argParser(Number))
    .action(async (opts: ProbeOptions) => {
      const logger = createLogger('prober');
      const routing = routingConfigSchema.safeParse({
        source: opts.routingSource,
        ...(opts.routingSource === 'file' ? { file: opts.routingFile } : {}),
        ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
      });
      if (!routing.success) exitOnError(new Error(opts.routingSource === 'file' ? 'fledge probe needs --routing-file <file> (or --routing-source virtualservice)' : routing.error.message));
      const { startProberApp } = await import('../extproc/prober/prober-app.js');
      const app = await startProberApp({
        routing: routing.data,
        goldenFile: opts.goldenFile,
        secret: { secretEnv: opts.secretEnv, ...(opts.secretFile ? { secretFile: opts.secretFile } : {}) },
        url: opts.url,
        hostTemplate: opts.hostTemplate,
        ratePerVersion: opts.rate,
        allServices: opts.allServices === true,
        timeoutMs: opts.timeout,
        maxInFlight: Math.floor(opts.maxInFlight),
        adminHost: opts.host,
        adminPort: opts.adminPort,
        logger,
      }).catch(exitOnError);
      stopOnSignals(() => app.stop(), logger);
    });
}
