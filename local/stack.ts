import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { renderEnvoyServices, renderRoutingFile, writeAtomically, writeTrafficState, type TrafficState } from '../controller/local/traffic-state.js';
import { newRouteToken } from '../common/route-token.js';
import { startProcess, waitForHttp, type ManagedProcess } from './child-process.js';
import { fledgeCli } from './package-paths.js';
import { EnvoyRouteFile } from '../controller/traffic/envoy/route-file.js';
import { DEFAULT_GOLDEN_FILE } from './golden-files.js';
import { startEnvoy } from './envoy.js';
import { preflight, PreflightError, type PortClaim } from './preflight.js';
import { startPrometheus } from './prometheus.js';
import { startRedis } from './redis.js';
import { modelServers, type RealModel, type StackConfig } from './stack-config.js';

/** The shortest evidence count range for the local stack's controller: five of its Prometheus's 1 s scrapes. */
export const LOCAL_EVIDENCE_MIN_WINDOW_SECONDS = 5;


/** One running part of the stack, as `fledge up` reports it. */
export interface StackComponent {
  name: string;
  /** Where to reach it, one line. */
  summary: string;
  /** Resolves if the component exits on its own (a crash while the stack is up). */
  exited: Promise<unknown>;
  stop(): Promise<void>;
}

export interface StackPaths {
  /** Working state: generated configs, logs, the TSDB. */
  stateDir: string;
  /** The flag file, resolved. */
  flagsFile?: string;
  /** With a rollouts file, the local controller runs these rollouts (started after Prometheus). */
  controller?: { rolloutsFile: string; timeScale?: number };
}

/**
 * The local stack: Redis, the simulated models, extproc, Envoy (routes by file-based RDS)
 * and Prometheus scraping extproc, and (given a rollouts file) the local controller, started
 * in dependency order with a readiness check each.
 */
export class LocalStack {
  readonly components: StackComponent[] = [];
  /** Everything spawned, reported or not yet, so a failed start leaves nothing running. */
  private readonly spawned: { stop(): Promise<void> }[] = [];
  readonly routingFile: string;
  readonly trafficFile: string;
  readonly routes: EnvoyRouteFile;

  constructor(
    readonly config: StackConfig,
    readonly paths: StackPaths,
  ) {
    mkdirSync(paths.stateDir, { recursive: true });
    this.routingFile = join(paths.stateDir, 'routing.yaml');
    this.trafficFile = join(paths.stateDir, 'traffic.json');
    // A folder of its own: Envoy reloads the routes on every rename in the folder it watches.
    mkdirSync(join(paths.stateDir, 'envoy-routes'), { recursive: true });
    this.routes = new EnvoyRouteFile(join(paths.stateDir, 'envoy-routes', 'routes.json'), `http://127.0.0.1:${config.ports.envoyAdmin}`);
  }

  portClaims(): PortClaim[] {
    const p = this.config.ports;
    return [
      { port: p.envoy, what: 'Envoy listener', setting: 'ports.envoy' },
      { port: p.envoyAdmin, what: 'Envoy admin', setting: 'ports.envoyAdmin' },
      { port: p.extproc, what: 'extproc gRPC', setting: 'ports.extproc' },
      { port: p.extprocAdmin, what: 'extproc admin', setting: 'ports.extprocAdmin' },
      { port: p.prometheus, what: 'Prometheus', setting: 'ports.prometheus' },
      { port: p.redis, what: 'Redis', setting: 'ports.redis' },
      ...(this.config.probes.enabled ? [{ port: p.prober, what: 'golden prober admin', setting: 'ports.prober' }] : []),
      ...(this.paths.controller ? [{ port: p.controllerAdmin, what: 'controller admin', setting: 'ports.controllerAdmin' }] : []),
      ...modelServers(this.config).map((m) => ({ port: m.port, what: `model ${m.service}/${m.version}`, setting: 'ports.models' })),
    ];
  }

  /** Starts everything, reporting each component as it comes up; on any failure stops what started. */
  async start(onUp: (c: StackComponent) => void): Promise<void> {
    const problems = await preflight(this.portClaims(), { envoy: true, prometheus: true, redis: true });
    if (problems.length) throw new PreflightError(problems);
    const up = (c: StackComponent) => {
      this.components.push(c);
      onUp(c);
    };
    try {
      const ports = this.config.ports;
      const redis = await startRedis({ port: ports.redis });
      this.spawned.push(redis);
      up({ name: 'redis', summary: redis.url, exited: redis.process.exited, stop: () => redis.stop() });

      const upstreams = new Map<string, Record<string, { host: string; port: number }>>();
      for (const model of modelServers(this.config)) {
        const name = `model ${model.service}/${model.version}`;
        if (model.model) {
          const real = this.child(name, realModelArgs(model.model, model.version, model.port));
          // Ready once the model is loaded (a second or two), not merely listening.
          await waitForHttp(real, `http://127.0.0.1:${model.port}/readyz`, 120_000);
          up(this.component(real, `http://127.0.0.1:${model.port}/v1 (real model ${model.model.model}${model.model.temperature === undefined ? '' : `, temperature ${model.model.temperature}`}${model.model.systemPrompt === undefined ? '' : `, system prompt "${model.model.systemPrompt}"`})`));
        } else {
          const knobsFile = join(this.paths.stateDir, `knobs-${model.service}-${model.version}.json`);
          writeFileSync(knobsFile, JSON.stringify(model.knobs));
          const sim = this.child(name, ['sim', '--port', String(model.port), '--version', model.version, '--knobs', knobsFile]);
          await waitForHttp(sim, `http://127.0.0.1:${model.port}/healthz`);
          up(this.component(sim, `http://127.0.0.1:${model.port}/v1 (knobs: /admin/knobs)`));
        }
        upstreams.set(model.service, { ...upstreams.get(model.service), [model.version]: { host: '127.0.0.1', port: model.port } });
      }

      // Traffic starts all-stable; from here on only the controller changes it. A new route
      // token per stack: Envoy's per-version routes and extproc share it, clients never see it.
      const routeToken = newRouteToken();
      const traffic: TrafficState = {
        services: Object.fromEntries(
          Object.entries(this.config.services).map(([name, s]) => [name, { stable: s.stable, canaryWeight: 0, mirrorPercent: 0, killed: false, routeToken, upstreams: upstreams.get(name)! }]),
        ),
      };
      writeTrafficState(this.trafficFile, traffic);
      writeAtomically(this.routingFile, renderRoutingFile(traffic));
      const services = renderEnvoyServices(traffic);
      const extprocSocket = this.config.extprocTransport === 'unix' ? join(this.paths.stateDir, 'extproc.sock') : undefined;
      const listen = extprocSocket ? ['--listen', `unix:${extprocSocket}`] : ['--port', String(ports.extproc)];
      const extprocArgs = ['extproc', '--routing-file', this.routingFile, ...listen, '--admin-port', String(ports.extprocAdmin)];
      if (this.paths.flagsFile) extprocArgs.push('--flags-file', this.paths.flagsFile);
      const extprocConfig = this.extprocConfig(redis.url, ports.envoy);
      if (extprocConfig) {
        const configFile = join(this.paths.stateDir, 'extproc.yaml');
        writeFileSync(configFile, toYaml(extprocConfig));
        extprocArgs.push('--config', configFile);
      }
      const extproc = this.child('extproc', extprocArgs);
      await waitForHttp(extproc, `http://127.0.0.1:${ports.extprocAdmin}/readyz`);
      up(this.component(extproc, `gRPC ${extprocSocket ? `unix:${extprocSocket}` : `127.0.0.1:${ports.extproc}`}, metrics http://127.0.0.1:${ports.extprocAdmin}/metrics`));

      const firstRoutes = this.routes.write(services);
      const envoy = await startEnvoy({ listenPort: ports.envoy, adminPort: ports.envoyAdmin, extprocPort: ports.extproc, extprocSocket, services, routesFile: this.routes.file }, this.paths.stateDir);
      this.spawned.push(envoy.process);
      await this.routes.waitApplied(firstRoutes);
      up(this.component(envoy.process, `http://127.0.0.1:${ports.envoy} (admin :${ports.envoyAdmin})`));

      if (this.config.probes.enabled) {
        const prober = this.child('prober', [
          'probe',
          '--routing-file', this.routingFile,
          '--golden-file', this.goldenFile(),
          '--url', `http://127.0.0.1:${ports.envoy}`,
          '--rate', String(this.config.probes.rate),
          '--secret-file', this.probeSecretFile,
          '--admin-port', String(ports.prober),
        ]);
        await waitForHttp(prober, `http://127.0.0.1:${ports.prober}/readyz`);
        up(this.component(prober, `golden probes (${this.goldenFile()}) at ${this.config.probes.rate}/s per version, metrics http://127.0.0.1:${ports.prober}/metrics`));
      }

      const prometheus = await startPrometheus({ targets: [`127.0.0.1:${ports.extprocAdmin}`], scrapeIntervalMs: 1000, port: ports.prometheus, dataDir: join(this.paths.stateDir, 'prometheus') });
      this.spawned.push(prometheus);
      up({ name: 'prometheus', summary: `${prometheus.url} (scraping extproc every 1s)`, exited: prometheus.process.exited, stop: () => prometheus.stop() });

      if (this.paths.controller) {
        const { rolloutsFile, timeScale = 1 } = this.paths.controller;
        // The controller checks each rollout's policy against the stack's evaluators.
        const stackFile = join(this.paths.stateDir, 'stack.json');
        writeFileSync(stackFile, JSON.stringify(this.config, null, 2));
        const controller = this.child('controller', [
          'controller', '--local',
          '--stack', stackFile,
          '--state-dir', this.paths.stateDir,
          '--rollouts', rolloutsFile,
          '--prometheus-url', prometheus.url,
          '--envoy-admin-url', `http://127.0.0.1:${ports.envoyAdmin}`,
          '--extproc-admin-url', `http://127.0.0.1:${ports.extprocAdmin}`,
          '--time-scale', String(timeScale),
          // Prometheus scrapes every second here: an evidence stage counts from its own start, not 60 s back.
          '--evidence-min-window', String(LOCAL_EVIDENCE_MIN_WINDOW_SECONDS),
          '--admin-port', String(ports.controllerAdmin),
        ]);
        await waitForHttp(controller, `http://127.0.0.1:${ports.controllerAdmin}/readyz`);
        up(this.component(controller, `local mode, ${rolloutsFile}${timeScale === 1 ? '' : ` (time scale ${timeScale})`}, admin http://127.0.0.1:${ports.controllerAdmin}`));
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** The golden set the probes and extproc use. */
  goldenFile(): string {
    const quality = this.config.extproc?.quality as { golden?: { file?: string } } | undefined;
    return this.config.probes.goldenFile ?? quality?.golden?.file ?? DEFAULT_GOLDEN_FILE;
  }

  /**
   * extproc's config: the stack file's `extproc` section, plus the probe secret, generated
   * per stack (it pins golden probes and shadow copies), the stack's Redis (guardrail trips,
   * shadow pairs), shadow copies through the stack's Envoy, and with probes on the golden
   * set (inspected among sampled requests only, unless the stack file says otherwise).
   */
  private extprocConfig(redisUrl: string, envoyPort: number): Record<string, unknown> {
    const stackBase = this.config.extproc ?? {};
    const section = (name: string) => (stackBase[name] ?? {}) as Record<string, unknown>;
    writeFileSync(this.probeSecretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const base: Record<string, unknown> = {
      ...stackBase,
      guardrail: { redisUrl, ...section('guardrail') },
      shadow: { via: `http://127.0.0.1:${envoyPort}`, redisUrl, ...section('shadow') },
      probes: { secretFile: this.probeSecretFile },
    };
    if (!this.config.probes.enabled) return base;
    const quality = (base.quality ?? {}) as Record<string, unknown>;
    const golden = (quality.golden ?? {}) as Record<string, unknown>;
    return { ...base, quality: { ...quality, golden: { inspect: 'sampled', ...golden, file: this.goldenFile() } } };
  }

  private get probeSecretFile(): string {
    return join(this.paths.stateDir, 'probe-secret');
  }

  /** Resolves with the first component that exits while the stack is up. */
  firstExit(): Promise<StackComponent> {
    return Promise.race(this.components.map((c) => c.exited.then(() => c)));
  }

  /** Stops everything, last started first. */
  async stop(): Promise<void> {
    this.components.splice(0);
    for (const c of this.spawned.splice(0).reverse()) await c.stop().catch(() => undefined);
  }

  private child(name: string, args: string[]): ManagedProcess {
    const proc = startProcess(name, process.execPath, [fledgeCli(), ...args], join(this.paths.stateDir, `${name.replaceAll(/[^a-z0-9.-]+/gi, '-')}.log`), {
      ...process.env,
      FLEDGE_LOG_LEVEL: process.env.FLEDGE_LOG_LEVEL ?? 'info',
    });
    this.spawned.push(proc);
    return proc;
  }

  private component(proc: ManagedProcess, summary: string): StackComponent {
    return { name: proc.name, summary, exited: proc.exited, stop: () => proc.stop() };
  }
}

/** `fledge model`'s arguments for a version served by the real model. */
export function realModelArgs(m: RealModel, version: string, port: number): string[] {
  const args = ['model', '--model', m.model, '--version', version, '--port', String(port), '--threads', String(m.threads), '--concurrency', String(m.concurrency), '--queue', String(m.queue)];
  if (m.systemPrompt !== undefined) args.push('--system-prompt', m.systemPrompt);
  if (m.temperature !== undefined) args.push('--temperature', String(m.temperature));
  return args;
}
