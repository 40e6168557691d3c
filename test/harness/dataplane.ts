import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { startProcess, waitForHttp, type ManagedProcess } from '../../local/child-process.js';
import { fledgeCli } from '../../local/package-paths.js';
import { startEnvoy, type RunningEnvoy } from '../../local/envoy.js';
import type { LocalService } from '../../controller/traffic/envoy/routes.js';
import { EnvoyRouteFile } from '../../controller/traffic/envoy/route-file.js';
import { newRouteToken } from '../../common/route-token.js';
import { freePort } from '../../local/ports.js';
import type { ServiceRouting } from '../../extproc/routing/state.js';
import type { GuardrailThresholds } from '../../extproc/guardrail/thresholds.js';
import type { KnobsInput } from '../../sim/knobs.js';
import { startSim } from '../../sim/server.js';
import { chat, mapLimit, type ModelResponse } from './http-client.js';
import { TcpProxy } from './tcp-proxy.js';

export const CLI = fledgeCli();

export interface ServiceSpec {
  name: string;
  stable: string;
  canary?: string;
  canaryWeight?: number;
  killed?: boolean;
  rolloutHashes?: Record<string, string>;
  /** The per-version routes' secret; a fresh random one per data plane when absent. */
  routeToken?: string;
  /** More versions to run a simulated model for (e.g. a candidate that is not the canary now). */
  extraVersions?: string[];
  /** The canary's guardrail limits, as the controller writes them from the policy. */
  guardrail?: GuardrailThresholds;
}

type Sim = Awaited<ReturnType<typeof startSim>>;

export interface DataPlaneOptions {
  /**
   * Run extproc with `routing.source: virtualservice` against a Kubernetes API server
   * (kubeconfig file, e.g. the fledge-extproc ServiceAccount's) instead of a routing file;
   * the test then drives routing by writing VirtualServices.
   */
  virtualService?: { kubeconfig: string; namespace?: string };
  /** Extra extproc config (e.g. a `quality` section), written to a file passed with --config. */
  extprocConfig?: Record<string, unknown>;
  /** "service/version" → sim knobs (default: fixed 1 ms latency). */
  knobs?: Record<string, KnobsInput>;
  /** Point Envoy's ext_proc cluster here instead of at extproc (e.g. a dead port: Envoy then fails open). */
  envoyExtprocPort?: number;
  /** Put a TCP proxy between Envoy and extproc (`dp.extprocProxy`), e.g. to make extproc slow. */
  extprocProxy?: boolean;
  /** extproc listens on a Unix domain socket (`dp.extprocSocket`) and Envoy reaches it by a pipe address. */
  extprocSocket?: boolean;
  /** `fledge extproc --workers N`: N worker processes share the gRPC port; the primary serves the admin port. */
  extprocWorkers?: number;
  /** Envoy's worker threads (default 1); each opens its own ext_proc connection. */
  envoyConcurrency?: number;
}

/**
 * A real data plane on loopback: simulated models, `fledge extproc` as a child process
 * and a real Envoy in front, on free ports in a temp dir, at the production settings:
 * message_timeout 200 ms, failure_mode_allow, the weighted route at the canary's weight,
 * per-version routes matched on the route token. Envoy's routes come by file-based RDS,
 * so `applyRouting` moves extproc's state and Envoy's weights together, as local mode does.
 */
export class DataPlane {
  readonly dir = mkdtempSync(join(tmpdir(), 'fledge-dp-'));
  readonly routingFile = join(this.dir, 'routing.yaml');
  readonly flagsFile = join(this.dir, 'flags.json');
  readonly extprocSocket = join(this.dir, 'extproc.sock');
  readonly sims = new Map<string, Sim>();
  extproc!: ManagedProcess;
  envoy!: RunningEnvoy;
  grpcPort = 0;
  adminPort = 0;
  /** Every service's route token (the one its spec gave, or a fresh one). */
  readonly routeTokens = new Map<string, string>();
  envoyRoutes!: EnvoyRouteFile;
  /** Between Envoy and extproc when the `extprocProxy` option is set. */
  extprocProxy: TcpProxy | undefined;
  private services: ServiceSpec[] = [];
  private readonly upstreams: Record<string, Record<string, { host: string; port: number }>> = {};

  constructor(private options: DataPlaneOptions = {}) {}

  /** `flags` is flagd JSON text; omit it to route by weight only. */
  async start(services: ServiceSpec[], flags?: string, options: DataPlaneOptions = {}): Promise<this> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'make build' first`);
    this.services = services;
    this.options = { ...this.options, ...options };
    for (const s of services) this.routeTokens.set(s.name, s.routeToken ?? newRouteToken());
    if (!this.options.virtualService) this.writeRouting(services);
    if (flags !== undefined) writeFileSync(this.flagsFile, flags);
    for (const s of services) {
      this.upstreams[s.name] = {};
      for (const version of new Set([s.stable, ...(s.canary ? [s.canary] : []), ...(s.extraVersions ?? [])])) {
        const knobs = this.options.knobs?.[`${s.name}/${version}`] ?? { latency: { kind: 'fixed', ms: 1 } };
        const sim = await startSim({ host: '127.0.0.1', port: 0, version, knobs });
        this.sims.set(`${s.name}/${version}`, sim);
        this.upstreams[s.name]![version] = { host: '127.0.0.1', port: sim.port };
      }
    }
    this.grpcPort = await freePort();
    this.adminPort = await freePort();
    this.startExtproc(flags !== undefined);
    await waitForHttp(this.extproc, `http://127.0.0.1:${this.adminPort}/readyz`);
    if (this.options.extprocProxy) this.extprocProxy = await new TcpProxy('127.0.0.1', this.grpcPort).start();
    const envoyAdminPort = await freePort();
    mkdirSync(join(this.dir, 'envoy-routes'));
    this.envoyRoutes = new EnvoyRouteFile(join(this.dir, 'envoy-routes', 'routes.json'), `http://127.0.0.1:${envoyAdminPort}`);
    const first = this.envoyRoutes.write(this.envoyServices(services));
    // message_timeout is left at the production default (200 ms), as deployed.
    this.envoy = await startEnvoy(
      {
        listenPort: await freePort(),
        adminPort: envoyAdminPort,
        extprocPort: this.options.envoyExtprocPort ?? this.extprocProxy?.port ?? this.grpcPort,
        extprocSocket: this.options.extprocSocket ? this.extprocSocket : undefined,
        services: this.envoyServices(services), routesFile: this.envoyRoutes.file },
      this.dir,
      'envoy',
      this.options.envoyConcurrency ?? 1,
    );
    await this.envoyRoutes.waitApplied(first);
    return this;
  }

  /** Envoy's view of the services, as local mode renders it from the same state extproc reads. */
  envoyServices(services: ServiceSpec[] = this.services): LocalService[] {
    return services.map((s) => ({
      name: s.name,
      stable: s.stable,
      canary: s.canary,
      fallbackCanaryWeight: s.killed ? 0 : (s.canaryWeight ?? 0),
      routeToken: this.routeTokens.get(s.name) ?? s.routeToken,
      upstreams: this.upstreams[s.name] ?? {},
    }));
  }

  /** Moves Envoy's routes (weights, per-version routes) and waits until Envoy runs them. */
  async applyEnvoyRoutes(services: ServiceSpec[]): Promise<void> {
    await this.envoyRoutes.apply(this.envoyServices(services));
  }

  /**
   * Moves routing as local mode does: extproc's routing file and Envoy's routes from the same
   * state; resolves once Envoy runs the routes and extproc's /debug/state shows the services.
   */
  async applyRouting(services: ServiceSpec[]): Promise<void> {
    this.writeRouting(services);
    await this.applyEnvoyRoutes(services);
    await this.waitForState((st) =>
      services.every((s) => {
        const got = st.services.find((x) => x.service === s.name);
        return got !== undefined && got.stable === s.stable && got.canary === s.canary && got.canaryWeight === (s.canary ? (s.canaryWeight ?? 0) : got.canaryWeight) && got.killed === (s.killed ?? false);
      }),
    );
  }

  startExtproc(withFlags = existsSync(this.flagsFile)): ManagedProcess {
    const vs = this.options.virtualService;
    const routing = vs
      ? ['--routing-source', 'virtualservice', '--kubeconfig', vs.kubeconfig, ...(vs.namespace ? ['--namespace', vs.namespace] : [])]
      : ['--routing-file', this.routingFile];
    const listen = this.options.extprocSocket ? ['--listen', `unix:${this.extprocSocket}`] : ['--port', String(this.grpcPort)];
    const args = [CLI, 'extproc', ...routing, ...listen, '--admin-port', String(this.adminPort)];
    if (withFlags) args.push('--flags-file', this.flagsFile);
    if (this.options.extprocWorkers !== undefined) args.push('--workers', String(this.options.extprocWorkers));
    if (this.options.extprocConfig) {
      const configFile = join(this.dir, 'extproc.yaml');
      writeFileSync(configFile, toYaml(this.options.extprocConfig));
      args.push('--config', configFile);
    }
    this.extproc = startProcess('extproc', process.execPath, args, join(this.dir, 'extproc.log'));
    return this.extproc;
  }

  async restartExtproc(): Promise<void> {
    this.startExtproc();
    await waitForHttp(this.extproc, `http://127.0.0.1:${this.adminPort}/readyz`);
  }

  get listenPort(): number {
    return Number(new URL(this.envoy.listenUrl).port);
  }

  request(opts: Parameters<typeof chat>[1]): Promise<ModelResponse> {
    return chat(this.listenPort, opts);
  }

  /** Writes extproc's routing file only (with each service's route token); Envoy is not touched. */
  writeRouting(services: ServiceSpec[] = this.services): void {
    this.services = services;
    const doc = {
      // Its Envoy runs local mode's routes, whose per-version routes name their version on the answer.
      services: Object.fromEntries(services.map(({ name, extraVersions: _extra, ...rest }) => [name, { ...rest, routeToken: this.routeTokens.get(name) ?? rest.routeToken, routesReportServedBy: true }])),
    };
    writeFileSync(this.routingFile, toYaml(doc));
  }

  async debugState(): Promise<{ routingGeneration: number; services: ServiceRouting[]; routing: Record<string, unknown>; flags: { generation: number; lastError: string | null } | null }> {
    const res = await fetch(`http://127.0.0.1:${this.adminPort}/debug/state`);
    return (await res.json()) as never;
  }

  /** Polls /debug/state until `ok` holds; the readiness check for "extproc has seen the change". */
  async waitForState(ok: (s: Awaited<ReturnType<DataPlane['debugState']>>) => boolean, timeoutMs = 10_000): Promise<number> {
    const started = Date.now();
    for (;;) {
      const state = await this.debugState();
      if (ok(state)) return Date.now() - started;
      if (Date.now() - started > timeoutMs) throw new Error(`extproc state did not reach the expected condition in ${timeoutMs} ms: ${JSON.stringify(state)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Waits until extproc's log (piped to a file, so it may lag) contains `pattern`; returns the log. */
  async waitForLog(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const log = readFileSync(this.extproc.logFile, 'utf8');
      if (pattern.test(log)) return log;
      if (Date.now() > deadline) throw new Error(`extproc's log did not show ${pattern} within ${timeoutMs} ms:\n${this.extproc.logTail()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * How many ext_proc streams Envoy let through without extproc's answer (down, hung, or
   * past the 200 ms message_timeout): the documented fail-open. A test that checks extproc's
   * decisions counts undecided answers against it, so that a busy machine's timeouts are
   * told apart from a wrong decision (extproc's latency is the benchmark's business).
   */
  async failOpens(): Promise<number> {
    const text = await (await fetch(`${this.envoy.adminUrl}/stats?filter=ext_proc.failure_mode_allowed$`)).text();
    return text.split('\n').reduce((n, line) => n + (Number(line.split(':')[1] ?? 0) || 0), 0);
  }

  /**
   * Sends requests and splits the answers: decided (extproc's x-fledge-reason on the answer)
   * and undecided, checking that every undecided one is one Envoy counted as failed open.
   */
  async decided<T>(items: readonly T[], send: (item: T, index: number) => Promise<ModelResponse>, limit = 8): Promise<{ answers: ModelResponse[]; decided: boolean[] }> {
    const before = await this.failOpens();
    const answers = await mapLimit(items, limit, send);
    const decided = answers.map((a) => a.headers['x-fledge-reason'] !== undefined);
    const undecided = decided.filter((d) => !d).length;
    const failedOpen = (await this.failOpens()) - before;
    if (undecided > failedOpen) throw new Error(`${undecided} answers carry no x-fledge-reason but Envoy failed open only ${failedOpen} times: extproc answered without deciding`);
    return { answers, decided };
  }

  async metricsText(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.adminPort}/metrics`)).text();
  }

  sim(service: string, version: string): Sim {
    const sim = this.sims.get(`${service}/${version}`);
    if (!sim) throw new Error(`no simulated model ${service}/${version}`);
    return sim;
  }

  async stop(): Promise<void> {
    await this.envoy?.process.stop();
    await this.extproc?.stop();
    await this.extprocProxy?.stop();
    for (const sim of this.sims.values()) await sim.close();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Sums a Prometheus text-format sample over the series whose labels include `match`. */
export function metricValue(text: string, name: string, match: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labels = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(match).every(([k, v]) => labels.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
