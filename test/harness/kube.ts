// Envtest-style Kubernetes control plane for integration tests: a real etcd, a real
// kube-apiserver and a real kube-controller-manager (built by test/harness/k8s/build.sh) on
// loopback, with Istio's CRDs installed. The controller-manager runs only the controllers
// tests need (see KCM_CONTROLLERS): Deployments get their ReplicaSets, pod-template-hashes
// and revisions from Kubernetes itself, ReplicaSets create their Pods, owned objects are
// garbage-collected and deleted namespaces emptied. No kubelet runs, so Pods stay Pending
// until a test reports them Ready through the status subresource (test/harness/pods.ts);
// ServiceAccount tokens come from the TokenRequest API, not from Secrets.

import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  loadAllYaml,
  PatchStrategy,
  type KubernetesObject,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled into dist/ (for the controller bench) the file stays in the source tree.
const versionsFile = [path.join(here, 'k8s', 'versions.env'), path.join(here, '..', '..', '..', 'test', 'harness', 'k8s', 'versions.env')].find((f) => existsSync(f)) ?? path.join(here, 'k8s', 'versions.env');

/** Istio CRDs installed by default: the ones fledge reads or writes. */
export const DEFAULT_ISTIO_CRDS = [
  'virtualservices.networking.istio.io',
  'destinationrules.networking.istio.io',
  'envoyfilters.networking.istio.io',
] as const;

export interface StartKubeOptions {
  /** CRD names from istio-crds.yaml to install; 'all' installs every Istio CRD. */
  istioCrds?: readonly string[] | 'all';
  /** Overall startup deadline in milliseconds (default 120 s). */
  startTimeoutMs?: number;
  /** Keep the temp dir (logs, certs, etcd data) after stop(), for debugging. */
  keepDir?: boolean;
  /** Run kube-controller-manager (default true); without it nothing acts on Deployments. */
  controllerManager?: boolean;
}

/** What kube-controller-manager runs here: Deployments → ReplicaSets → Pods, and the clean-up after them. */
export const KCM_CONTROLLERS = ['deployment', 'replicaset', 'garbagecollector', 'namespace', 'serviceaccount'] as const;

export interface KubeHarness {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Temp dir holding etcd data, certs and the child processes' logs. */
  readonly dir: string;
  /** Authenticated as a static-token user in system:masters (bypasses RBAC). */
  readonly adminKubeConfig: KubeConfig;
  /** Path of a kubeconfig file for adminKubeConfig, for child processes. */
  readonly adminKubeconfigPath: string;
  /** A KubeConfig authenticated with a fresh TokenRequest token for an existing ServiceAccount. */
  kubeconfigFor(serviceAccount: string, namespace: string): Promise<KubeConfig>;
  /** Writes a kubeconfig file for kc into the temp dir and returns its path. */
  writeKubeconfig(kc: KubeConfig, name: string): Promise<string>;
  /** Server-side applies every document in yamlText (as admin unless kc is given). */
  apply(yamlText: string, kc?: KubeConfig): Promise<KubernetesObject[]>;
  /** Kills etcd and kube-apiserver and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface K8sVersions {
  K8S_VERSION: string;
  ETCD_VERSION: string;
  ISTIO_API_VERSION: string;
}

/** Reads the pinned versions shared with build.sh. */
export function k8sVersions(): K8sVersions {
  const values: Record<string, string> = {};
  for (const line of readFileSync(versionsFile, 'utf8').split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(\S*)\s*$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) values[m[1]] = m[2];
  }
  const get = (k: keyof K8sVersions): string => {
    const v = values[k];
    if (!v) throw new Error(`${versionsFile}: missing ${k}`);
    return v;
  };
  return {
    K8S_VERSION: get('K8S_VERSION'),
    ETCD_VERSION: get('ETCD_VERSION'),
    ISTIO_API_VERSION: get('ISTIO_API_VERSION'),
  };
}

/** Directory build.sh writes to; FLEDGE_K8S_DIR overrides it. Mirrors build.sh. */
export function k8sBinDir(): string {
  const override = process.env['FLEDGE_K8S_DIR'];
  if (override) return override;
  const v = k8sVersions();
  const cacheRoot = process.env['FLEDGE_CACHE'] || path.join(os.homedir(), '.cache', 'fledge');
  return path.join(
    cacheRoot,
    'k8s',
    `k8s-${v.K8S_VERSION}_etcd-${v.ETCD_VERSION}_istio-api-${v.ISTIO_API_VERSION}`,
  );
}

function requireArtifacts(dir: string): { apiserver: string; controllerManager: string; etcd: string; crds: string } {
  const files = {
    apiserver: path.join(dir, 'kube-apiserver'),
    controllerManager: path.join(dir, 'kube-controller-manager'),
    etcd: path.join(dir, 'etcd'),
    crds: path.join(dir, 'istio-crds.yaml'),
  };
  const missing = Object.values(files).filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `Kubernetes test binaries missing (${missing.join(', ')}); ` +
        'run `make k8s-deps` (test/harness/k8s/build.sh) first',
    );
  }
  return files;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
  exitCode: number | null | undefined;
}

function startProc(name: string, bin: string, args: string[], dir: string): Proc {
  const logFile = path.join(dir, `${name}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const proc: Proc = { name, child, logFile, exitCode: undefined, exited: Promise.resolve(null) };
  proc.exited = new Promise((resolve) => {
    // Mark the exit at once so readiness polls fail fast; resolve only after 'close' (stdio
    // drained) and the log is flushed, so stop() can delete the dir safely.
    let finished = false;
    const finish = (code: number | null, note: string): void => {
      // A failed spawn can report both 'error' and 'close'.
      if (finished) return;
      finished = true;
      proc.exitCode = code;
      log.end(`\n[harness] ${note}\n`, () => resolve(code));
    };
    child.once('error', (err) => finish(-1, `failed to start ${bin}: ${err.message}`));
    child.once('exit', (code) => {
      proc.exitCode = code;
    });
    child.once('close', (code, signal) => finish(code, `${name} exited code=${code} signal=${signal}`));
  });
  return proc;
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function killProc(p: Proc, graceMs = 5_000): Promise<void> {
  if (p.exitCode === undefined) {
    p.child.kill('SIGTERM');
    const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
    await p.exited;
    clearTimeout(timer);
  }
  await p.exited;
}

interface HttpResult {
  status: number;
  body: string;
}

function request(url: string, opts: { ca?: string; token?: string; insecure?: boolean }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = {};
    if (opts.token) headers['Authorization'] = `Bearer ${opts.token}`;
    // insecure: a self-signed serving cert we did not make (kube-controller-manager's), checked only for readiness.
    const req = mod.request(u, { ca: opts.ca, headers, timeout: 2_000, ...(opts.insecure ? { rejectUnauthorized: false } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Polls check() until it returns true. Fails early if a watched process exits, and on
 * deadline reports the last error so the cause is visible.
 */
async function waitFor(
  what: string,
  deadline: number,
  procs: Proc[],
  check: () => Promise<boolean>,
): Promise<void> {
  let lastErr = '';
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    const dead = procs.find((p) => p.exitCode !== undefined);
    if (dead) {
      throw new Error(
        `${dead.name} exited (code ${dead.exitCode}) while waiting for ${what}; log tail:\n` +
          (await tail(dead.logFile)),
      );
    }
    try {
      if (await check()) return;
      lastErr = '';
    } catch (err) {
      lastErr = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastErr ? `: ${lastErr}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

function makeKubeConfig(server: string, caData: string, user: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fledge-test', server, caData, skipTLSVerify: false }],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: 'fledge-test', user }],
    currentContext: user,
  });
  return kc;
}

/** Server-side applies each document; namespaced objects without a namespace go to "default". */
async function applyYaml(kc: KubeConfig, yamlText: string): Promise<KubernetesObject[]> {
  const client = KubernetesObjectApi.makeApiClient(kc);
  const out: KubernetesObject[] = [];
  // loadAllYaml maps wire names (e.g. x-kubernetes-int-or-string) to client-node's model
  // fields; KubernetesObjectApi serializes known kinds from those, dropping raw keys.
  for (const obj of loadAllYaml(yamlText) as (KubernetesObject | null)[]) {
    if (!obj) continue;
    if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) {
      throw new Error(`apply: document lacks apiVersion/kind/metadata.name: ${JSON.stringify(obj).slice(0, 200)}`);
    }
    try {
      out.push(
        await client.patch(obj, undefined, undefined, 'fledge-test', true, PatchStrategy.ServerSideApply),
      );
    } catch (err) {
      const ref = `${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata.name}`;
      throw new Error(`apply ${ref} failed: ${errorText(err)}`, { cause: err });
    }
  }
  return out;
}

/** Best-effort readable text for client-node ApiException and plain errors. */
export function errorText(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && 'body' in err) {
    const body = (err as { body: unknown }).body;
    let msg = typeof body === 'string' ? body : JSON.stringify(body);
    try {
      const parsed = typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : undefined;
      if (parsed?.message) msg = parsed.message;
    } catch {
      // body was not JSON; keep it verbatim
    }
    return `HTTP ${(err as { code: unknown }).code}: ${msg}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** HTTP status of a client-node ApiException, or undefined for other errors. */
export function errorStatus(err: unknown): number | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'number') return err.code;
  return undefined;
}

async function installCrds(
  kc: KubeConfig,
  crdFile: string,
  wanted: readonly string[] | 'all',
  deadline: number,
  procs: Proc[],
): Promise<void> {
  // Through loadAllYaml for the same wire-name mapping as in applyYaml.
  const all = (loadAllYaml(await readFile(crdFile, 'utf8')) as (V1CustomResourceDefinition | null)[])
    .filter((c): c is V1CustomResourceDefinition => c?.kind === 'CustomResourceDefinition');
  const names = wanted === 'all' ? all.map((c) => c.metadata?.name ?? '') : wanted;
  const api = kc.makeApiClient(ApiextensionsV1Api);
  for (const name of names) {
    const crd = all.find((c) => c.metadata?.name === name);
    if (!crd) throw new Error(`CRD ${name} not found in ${crdFile}`);
    try {
      await api.createCustomResourceDefinition({ body: crd });
    } catch (err) {
      throw new Error(`creating CRD ${name} failed: ${errorText(err)}`, { cause: err });
    }
  }
  // Note: kube-apiserver deliberately delays creates of a kind for 2 s after its CRD
  // becomes Established (an HA safeguard), so a test's first create may take ~2 s.
  for (const name of names) {
    await waitFor(`CRD ${name} Established`, deadline, procs, async () => {
      const crd = await api.readCustomResourceDefinition({ name });
      return (crd.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True');
    });
  }
}

export async function startKube(opts: StartKubeOptions = {}): Promise<KubeHarness> {
  try {
    return await startOnce(opts);
  } catch (err) {
    // Free ports are picked before the children bind them, so another process can win the
    // race; that is worth exactly one retry with new ports.
    if (err instanceof Error && /address already in use/.test(err.message)) return startOnce(opts);
    throw err;
  }
}

async function startOnce(opts: StartKubeOptions): Promise<KubeHarness> {
  const bins = requireArtifacts(k8sBinDir());
  const deadline = Date.now() + (opts.startTimeoutMs ?? 120_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fledge-kube-'));
  const procs: Proc[] = [];
  let stopped = false;

  // Children must not outlive a crashed test run.
  const onExit = (): void => {
    for (const p of procs) if (p.exitCode === undefined) p.child.kill('SIGKILL');
  };
  process.once('exit', onExit);

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // apiserver first so it does not spend its shutdown retrying a dead etcd.
    for (const p of [...procs].reverse()) await killProc(p);
    process.removeListener('exit', onExit);
    if (!opts.keepDir) await rm(dir, { recursive: true, force: true });
  };

  try {
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const etcd = startProc(
      'etcd',
      bins.etcd,
      [
        '--name=fledge',
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=fledge=${peerUrl}`,
        // Test data is throwaway: skipping fsync makes startup and writes much faster.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      dir,
    );
    procs.push(etcd);
    await waitFor('etcd /health', deadline, procs, async () => {
      const r = await request(`${etcdUrl}/health`, {});
      return r.status === 200 && r.body.includes('"health":"true"');
    });

    // ServiceAccount token signing keys; EC keys are quick to generate.
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const saKey = path.join(dir, 'sa.key');
    const saPub = path.join(dir, 'sa.pub');
    await writeFile(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(saPub, publicKey.export({ type: 'spki', format: 'pem' }));

    // Admin authenticates with a static token in system:masters, which RBAC always allows.
    const adminToken = randomBytes(24).toString('hex');
    // kube-controller-manager has its own identity (the one its bootstrap RBAC names).
    const kcmToken = randomBytes(24).toString('hex');
    const tokenFile = path.join(dir, 'tokens.csv');
    await writeFile(tokenFile, `${adminToken},fledge-admin,fledge-admin,"system:masters"\n${kcmToken},system:kube-controller-manager,system:kube-controller-manager\n`, { mode: 0o600 });

    const certDir = path.join(dir, 'certs');
    const apiserver = startProc(
      'kube-apiserver',
      bins.apiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        // kube-apiserver writes a self-signed serving cert (valid for 127.0.0.1) here.
        `--cert-dir=${certDir}`,
        `--token-auth-file=${tokenFile}`,
        '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${saPub}`,
        `--service-account-signing-key-file=${saKey}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        // The "kubernetes" Service endpoints may not point at loopback; skip reconciling them.
        '--endpoint-reconciler-type=none',
        // Pods need no ServiceAccount here (no kubelet mounts tokens); tests get SA tokens
        // from the TokenRequest API.
        '--disable-admission-plugins=ServiceAccount',
        '--allow-privileged=true',
        '--profiling=false',
        '--v=1',
      ],
      dir,
    );
    procs.push(apiserver);

    const server = `https://127.0.0.1:${apiPort}`;
    const certFile = path.join(certDir, 'apiserver.crt');
    await waitFor('kube-apiserver serving certificate', deadline, procs, async () => existsSync(certFile));
    // The file holds the serving cert followed by its self-signed CA; trusting both is fine.
    const caPem = await readFile(certFile, 'utf8');
    await waitFor('kube-apiserver /readyz', deadline, procs, async () => {
      const r = await request(`${server}/readyz`, { ca: caPem, token: adminToken });
      if (r.status !== 200) throw new Error(`/readyz ${r.status}: ${r.body.slice(0, 500)}`);
      return true;
    });

    const caData = Buffer.from(caPem).toString('base64');
    const adminKubeConfig = makeKubeConfig(server, caData, 'fledge-admin', adminToken);
    await installCrds(adminKubeConfig, bins.crds, opts.istioCrds ?? DEFAULT_ISTIO_CRDS, deadline, procs);

    const writeKubeconfig = async (kc: KubeConfig, name: string): Promise<string> => {
      const file = path.join(dir, `${name}.kubeconfig`);
      await writeFile(file, kc.exportConfig(), { mode: 0o600 });
      return file;
    };
    const adminKubeconfigPath = await writeKubeconfig(adminKubeConfig, 'admin');
    const core = adminKubeConfig.makeApiClient(CoreV1Api);

    if (opts.controllerManager !== false) {
      const kcmKubeconfig = await writeKubeconfig(makeKubeConfig(server, caData, 'system:kube-controller-manager', kcmToken), 'kube-controller-manager');
      const kcmPort = await freePort();
      const kcm = startProc(
        'kube-controller-manager',
        bins.controllerManager,
        [
          `--kubeconfig=${kcmKubeconfig}`,
          `--controllers=${KCM_CONTROLLERS.join(',')}`,
          // One instance per test run: nothing to elect.
          '--leader-elect=false',
          // As in a cluster: each controller acts as its own kube-system ServiceAccount, with
          // the bootstrap RBAC role made for it (tokens from the TokenRequest API).
          '--use-service-account-credentials=true',
          '--bind-address=127.0.0.1',
          `--secure-port=${kcmPort}`,
          `--cert-dir=${path.join(dir, 'kcm-certs')}`,
          // /healthz is always allowed; there is no one else to delegate authn/authz to.
          `--authentication-kubeconfig=${kcmKubeconfig}`,
          `--authorization-kubeconfig=${kcmKubeconfig}`,
          '--profiling=false',
          '--v=1',
        ],
        dir,
      );
      procs.push(kcm);
      await waitFor('kube-controller-manager /healthz', deadline, procs, async () => {
        const r = await request(`https://127.0.0.1:${kcmPort}/healthz`, { insecure: true });
        if (r.status !== 200) throw new Error(`/healthz ${r.status}: ${r.body.slice(0, 500)}`);
        return true;
      });
    }

    return {
      server,
      dir,
      adminKubeConfig,
      adminKubeconfigPath,
      writeKubeconfig,
      apply: (yamlText, kc) => applyYaml(kc ?? adminKubeConfig, yamlText),
      async kubeconfigFor(serviceAccount, namespace) {
        try {
          const tr = await core.createNamespacedServiceAccountToken({
            name: serviceAccount,
            namespace,
            body: { spec: { audiences: [], expirationSeconds: 3600 } },
          });
          const token = tr.status?.token;
          if (!token) throw new Error('TokenRequest returned no token');
          return makeKubeConfig(server, caData, `system:serviceaccount:${namespace}:${serviceAccount}`, token);
        } catch (err) {
          throw new Error(
            `token for ServiceAccount ${namespace}/${serviceAccount} failed (does it exist?): ${errorText(err)}`,
            { cause: err },
          );
        }
      },
      stop,
    };
  } catch (err) {
    const tails = await Promise.all(
      procs.map(async (p) => `--- ${p.name} log tail ---\n${await tail(p.logFile)}`),
    );
    await stop();
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`startKube failed: ${msg}\n${tails.join('\n')}`, { cause: err });
  }
}
