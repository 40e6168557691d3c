import { Command, Option } from 'commander';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { createLogger, type Logger } from '../common/logger.js';
import { DEFAULT_DECISIONS_QUERY, DEFAULT_MIN_REQUESTS, DEFAULT_TRAFFIC_QUERY } from '../controller/analysis/decision-coverage.js';
import { parseDuration } from '../controller/policy/duration.js';
import { DEFAULT_EVIDENCE_MIN_WINDOW_SECONDS } from '../controller/analysis/evidence/look.js';
import { exitOnError, stopOnSignals } from './exit.js';
import { loadKubeConfig } from './kubeconfig.js';

interface ControllerOptions {
  local?: boolean;
  stateDir: string;
  rollouts?: string;
  stack?: string;
  envoyAdminUrl: string;
  extprocAdminUrl: string;
  kubeconfig?: string;
  namespace?: string;
  allNamespaces?: boolean;
  prometheusUrl: string;
  timeScale: number;
  evidenceMinWindow: number;
  leaseNamespace: string;
  leaseName: string;
  id: string;
  adminHost: string;
  adminPort: number;
  leaseDuration: number;
  renewDeadline: number;
  retryPeriod: number;
  concurrency: number;
  availabilityTimeout: number;
  trafficQuery: string;
  decisionsQuery: string;
  decisionCheckMinRequests: number;
  decisionCheck: boolean;
  istiodDebugUrl?: string;
}

const durationMs = (what: string) => (value: string) => {
  const parsed = parseDuration(value);
  if ('error' in parsed) throw new Error(`${what}: ${parsed.error}`);
  return parsed.ms;
};

const positive = (what: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number, got "${value}"`);
  return n;
};

const LOCAL_EXTPROC_ADMIN_URL = 'http://127.0.0.1:9101';

export function controllerCommand(): Command {
  return new Command('controller')
    .description(
      'Run the rollout controller in cluster mode: watches Deployments annotated with fledge.dev/virtual-service, ' +
        'steps their canary weight through the policy on the Istio VirtualService, judges each stage with Prometheus, ' +
        'rolls back on a breach. Several replicas elect a leader with a Lease; only the leader acts.\n' +
        'With --local: runs the rollouts of a rollouts file against the local stack of `fledge up` (same engine, policies and analysis), ' +
        'keeping status and Events in <state-dir>/rollouts and taking actions from <state-dir>/actions.',
    )
    .addOption(new Option('--local', 'local mode: drive the local stack\'s Envoy and extproc instead of a cluster'))
    .addOption(new Option('--state-dir <dir>', 'local mode: the state dir of `fledge up` (traffic, routes, rollout status, actions)').default('.fledge'))
    .addOption(new Option('--rollouts <file>', 'local mode: the rollouts file (rollouts: [{name, service, candidate, stable, policy}], policies: [files]); watched for changes'))
    .addOption(new Option('--stack <file>', "local mode: the stack file (fledge up's); a rollout whose policy reads a metric none of its evaluators produces (golden probes, golden set, judge, opted-in self-reports) is Invalid, named at start"))
    .addOption(new Option('--envoy-admin-url <url>', 'local mode: the local Envoy\'s admin URL (to verify routes)').default('http://127.0.0.1:9901'))
    .addOption(
      new Option(
        '--extproc-admin-url <url>',
        "extproc's admin URL. Local mode: to verify it routes by the new state (default http://127.0.0.1:9101). " +
          'Cluster mode: its evaluator-coverage report (/coverage) is read at each rollout\'s start, and a policy metric none of its evaluators produces for the service makes the rollout Invalid; ' +
          'unset: not checked (manifests/controller.yaml sets the fledge-extproc Service)',
      ).default(LOCAL_EXTPROC_ADMIN_URL),
    )
    .addOption(new Option('--kubeconfig <file>', 'kubeconfig file (default as kubectl: $KUBECONFIG, ~/.kube/config, in-cluster)'))
    .addOption(new Option('-n, --namespace <ns>', 'watch only this namespace (default: all namespaces)'))
    .addOption(new Option('--prometheus-url <url>', 'Prometheus base URL for analysis queries').default('http://127.0.0.1:9090'))
    .addOption(
      new Option('--time-scale <factor>', 'divide every pause duration, analysis interval and initialDelay by this factor (for demos and tests: 600 makes a 10m pause last 1s); Prometheus query windows are not changed')
        .default(1)
        .argParser(positive('--time-scale')),
    )
    .addOption(
      new Option('--evidence-min-window <seconds>', "the shortest range of an evidence stage's count queries: a few of Prometheus's scrape intervals (the local stack scrapes every 1 s); not divided by --time-scale")
        .default(DEFAULT_EVIDENCE_MIN_WINDOW_SECONDS)
        .argParser(positive('--evidence-min-window')),
    )
    .addOption(new Option('--lease-namespace <ns>', 'namespace of the leader-election Lease').default('fledge-system'))
    .addOption(new Option('--lease-name <name>', 'name of the leader-election Lease').default('fledge-controller'))
    .addOption(new Option('--id <identity>', 'this replica\'s identity in the Lease (hostname_pid unless set)').default(`${hostname()}_${process.pid}`))
    .addOption(new Option('--admin-host <addr>', 'address of the admin port').default('127.0.0.1'))
    .addOption(new Option('--admin-port <n>', 'admin port: /healthz, /readyz, /metrics').default(9102).argParser(Number))
    .addOption(new Option('--lease-duration <seconds>', 'how long a Lease is valid without renewal').default(15).argParser(positive('--lease-duration')))
    .addOption(new Option('--renew-deadline <seconds>', 'a leader that cannot renew for this long stops acting (< lease duration)').default(10).argParser(positive('--renew-deadline')))
    .addOption(new Option('--retry-period <seconds>', 'how often to renew or try to acquire the Lease').default(2).argParser(positive('--retry-period')))
    .addOption(new Option('--concurrency <n>', 'rollouts reconciled at the same time (more: higher throughput, each reconcile slower on a busy API server)').default(4).argParser(positive('--concurrency')))
    .addOption(
      new Option('--availability-timeout <duration>', 'how long a weight step waits for the candidate Deployment to have an available replica before the rollout pauses (e.g. 10m; divided by --time-scale)')
        .default(10 * 60_000, '10m')
        .argParser(durationMs('--availability-timeout')),
    )
    .addOption(new Option('--traffic-query <promql>', 'requests that reached a rollout\'s service, for the silent fail-open check ({{service}}, {{namespace}} filled in; e.g. Envoy\'s envoy_cluster_upstream_rq_total outside Istio)').default(DEFAULT_TRAFFIC_QUERY, 'Istio\'s istio_requests_total over 2m'))
    .addOption(new Option('--decisions-query <promql>', 'extproc\'s decisions for that service over the same window').default(DEFAULT_DECISIONS_QUERY, 'fledge_extproc_decisions_total over 2m'))
    .addOption(new Option('--decision-check-min-requests <n>', 'pause a rollout when at least this many requests reached its service and extproc decided none').default(DEFAULT_MIN_REQUESTS).argParser(positive('--decision-check-min-requests')))
    .addOption(new Option('--no-decision-check', 'turn the silent fail-open check off'))
    .addOption(new Option('--istiod-debug-url <url>', 'istiod\'s HTTP debug URL (e.g. http://istiod.istio-system:8080): after each weight write, confirm the proxies run it and report weightVerified in the status (off when unset)'))
    .action(async (opts: ControllerOptions, command: Command) => {
      const logger = createLogger('controller');
      if (opts.local) return runLocal(opts, logger);
      // The local default would point a cluster controller at whatever listens on its own loopback.
      const extprocAdminUrl = command.getOptionValueSource('extprocAdminUrl') === 'default' ? undefined : opts.extprocAdminUrl;
      const { startControllerApp } = await import('../controller/kube/controller-app.js');
      const app = await startControllerApp({
        kubeConfig: loadKubeConfig(opts.kubeconfig),
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
        prometheusUrl: opts.prometheusUrl,
        timeScale: opts.timeScale,
        evidenceMinWindowSeconds: opts.evidenceMinWindow,
        leaseNamespace: opts.leaseNamespace,
        leaseName: opts.leaseName,
        identity: opts.id,
        adminHost: opts.adminHost,
        adminPort: opts.adminPort,
        leaseDurationMs: opts.leaseDuration * 1000,
        renewDeadlineMs: opts.renewDeadline * 1000,
        retryPeriodMs: opts.retryPeriod * 1000,
        concurrency: opts.concurrency,
        availabilityTimeoutMs: opts.availabilityTimeout,
        decisionCheck: opts.decisionCheck ? { queries: { traffic: opts.trafficQuery, decisions: opts.decisionsQuery }, minRequests: opts.decisionCheckMinRequests } : false,
        ...(opts.istiodDebugUrl ? { istiodDebugUrl: opts.istiodDebugUrl } : {}),
        ...(extprocAdminUrl ? { extprocAdminUrl } : {}),
        logger,
        onFatal: (err) => exitOnError(err),
      }).catch(exitOnError);
      stopOnSignals(() => app.stop(), logger);
    });
}

async function runLocal(opts: ControllerOptions, logger: Logger): Promise<void> {
  if (!opts.rollouts) throw new Error('controller --local needs --rollouts <file>');
  const { startLocalController } = await import('../controller/local/local-controller-app.js');
  let inventory;
  if (opts.stack) {
    const { stackInventory } = await import('../local/evaluator-inventory.js');
    const { loadStackConfig } = await import('../local/stack-config.js');
    try {
      inventory = stackInventory(loadStackConfig(resolve(opts.stack)));
    } catch (err) {
      return exitOnError(err);
    }
  }
  const app = await startLocalController({
    stateDir: resolve(opts.stateDir),
    rolloutsFile: resolve(opts.rollouts),
    prometheusUrl: opts.prometheusUrl,
    envoyAdminUrl: opts.envoyAdminUrl,
    extprocAdminUrl: opts.extprocAdminUrl,
    timeScale: opts.timeScale,
    evidenceMinWindowSeconds: opts.evidenceMinWindow,
    adminHost: opts.adminHost,
    adminPort: opts.adminPort,
    logger,
    ...(inventory ? { inventory } : {}),
  }).catch(exitOnError);
  stopOnSignals(() => app.stop(), logger);
}
