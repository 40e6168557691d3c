import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { startProcess, waitForHttp, type ManagedProcess } from '../../local/child-process.js';
import { fledgeCli } from '../../local/package-paths.js';
import { startEnvoy, type RunningEnvoy } from '../../local/envoy.js';
import { freePort } from '../../local/ports.js';
import type { ServiceRouting } from '../../extproc/routing/state.js';
import type { KnobsInput } from '../../sim/knobs.js';
import { startSim } from '../../sim/server.js';
import { chat, type ModelResponse } from './http-client.js';

export const CLI = fledgeCli();

export interface ServiceSpec {
  name: string;
  stable: string;
  canary?: string;
  canaryWeight?: number;
  killed?: boolean;
  rolloutHashes?: Record<string, string>;
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
}

/**
 * A real data plane on loopback: simulated models, `fledge extproc` as a child process
 * and a real Envoy in front, on free ports in a temp dir.
 */
export class DataPlane {
  readonly dir = mkdtempSync(join(tmpdir(), 'fledge-dp-'));
  readonly routingFile = join(this.dir, 'routing.yaml');
  readonly flagsFile = join(this.dir, 'flags.json');
  readonly sims = new Map<string, Sim>();
  extproc!: ManagedProcess;
  envoy!: RunningEnvoy;
  grpcPort = 0;
  adminPort = 0;
  private services: ServiceSpec[] = [];

  constructor(private options: DataPlaneOptions = {}) {}

  /** `flags` is flagd JSON text; omit it to route by weight only. */
  async start(services: ServiceSpec[], flags?: string, options: DataPlaneOptions = {}): Promise<this> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'make build' first`);
    this.services = services;
    this.options = { ...this.options, ...options };
    if (!this.options.virtualService) this.writeRouting(services);
    if (flags !== undefined) writeFileSync(this.flagsFile, flags);
    const upstreams: Record<string, Record<string, { host: string; port: number }>> = {};
    for (const s of services) {
      upstreams[s.name] = {};
      for (const version of [s.stable, ...(s.canary ? [s.canary] : [])]) {
        const knobs = this.options.knobs?.[`${s.name}/${version}`] ?? { latency: { kind: 'fixed', ms: 1 } };
        const sim = await startSim({ host: '127.0.0.1', port: 0, version, knobs });
        this.sims.set(`${s.name}/${version}`, sim);
        upstreams[s.name]![version] = { host: '127.0.0.1', port: sim.port };
      }
    }
    this.grpcPort = await freePort();
    this.adminPort = await freePort();
    this.startExtproc(flags !== undefined);
    await waitForHttp(this.extproc, `http://127.0.0.1:${this.adminPort}/readyz`);
    this.envoy = await startEnvoy(
      {
        listenPort: await freePort(),
        adminPort: await freePort(),
        extprocPort: this.options.envoyExtprocPort ?? this.grpcPort,
        // Generous, so a busy 2-core CI machine does not turn slow answers into fallbacks.
        messageTimeoutMs: 1000,
        services: services.map((s) => ({ name: s.name, stable: s.stable, canary: s.canary, upstreams: upstreams[s.name]! })),
      },
      this.dir,
    );
    return this;
  }

  startExtproc(withFlags = existsSync(this.flagsFile)): ManagedProcess {
    const vs = this.options.virtualService;
    const routing = vs
      ? ['--routing-source', 'virtualservice', '--kubeconfig', vs.kubeconfig, ...(vs.namespace ? ['--namespace', vs.namespace] : [])]
      : ['--routing-file', this.routingFile];
    const args = [CLI, 'extproc', ...routing, '--port', String(this.grpcPort), '--admin-port', String(this.adminPort)];
    if (withFlags) args.push('--flags-file', this.flagsFile);
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

  writeRouting(services: ServiceSpec[] = this.services): void {
    this.services = services;
    const doc = { services: Object.fromEntries(services.map(({ name, ...rest }) => [name, rest])) };
    writeFileSync(this.routingFile, toYaml(doc));
  }

  async debugState(): Promise<{ routingGeneration: number; services: ServiceRouting[]; flags: { generation: number; lastError: string | null } | null }> {
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
