// fledge's parts inside the Istio harness: the project's manifests, WorkloadEntries standing
// in for pods on loopback, and `fledge sim`/`fledge extproc`/`fledge controller` as child
// processes (what the Deployments would run).
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AppsV1Api, type KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml, parseAllDocuments, stringify as toYaml } from 'yaml';
import { startProcess, waitForHttp, type ManagedProcess } from '../../local/child-process.js';
import { fledgeCli } from '../../local/package-paths.js';
import { freePort } from '../../local/ports.js';
import type { KnobsInput } from '../../sim/knobs.js';
import type { KubeHarness } from './kube.js';
import { currentHash, makeDeploymentAvailable } from './pods.js';

// Compiled into dist/ (for the bench) the manifests stay in the source tree.
export const MANIFESTS = [resolve(import.meta.dirname, '../../manifests'), resolve(import.meta.dirname, '../../../manifests')].find((d) => existsSync(join(d, 'envoyfilter.yaml'))) ?? resolve(import.meta.dirname, '../../manifests');
const CLI = fledgeCli();

export function manifest(file: string): string {
  return readFileSync(join(MANIFESTS, file), 'utf8');
}

/** manifests/example/*.yaml in file order (the namespace first). */
export function exampleManifests(): string {
  return readdirSync(join(MANIFESTS, 'example'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => manifest(join('example', f)))
    .join('\n---\n');
}

/**
 * A second copy of the example in another namespace and gateway host, with other subset
 * names (e.g. the seed's v1.2/v1.3): the same objects, so two rollouts run side by side.
 */
export function exampleCopy(namespace: string, gatewayHost: string, subsets: { v1: string; v2: string }, service?: string): string {
  const text = service === undefined ? exampleManifests() : exampleManifests().replace(/^(\s*)fledge\.dev\/killed: "false"$/m, `$&\n$1fledge.dev/service: ${service}`);
  return text
    .replace(/^(\s*namespace:) models$/gm, `$1 ${namespace}`)
    .replace(/^(\s*name:) models$/gm, `$1 ${namespace}`)
    .replaceAll('chat.models.svc.cluster.local', `chat.${namespace}.svc.cluster.local`)
    .replaceAll('chat.example.com', gatewayHost)
    .replace(/\b(version|subset|name|fledge\.dev\/stable-subset|fledge\.dev\/canary-subset): v1\b/g, `$1: ${subsets.v1}`)
    .replace(/\b(version|subset|name|fledge\.dev\/stable-subset|fledge\.dev\/canary-subset): v2\b/g, `$1: ${subsets.v2}`)
    .replace(/"--version", "v1"/g, `"--version", "${subsets.v1}"`)
    .replace(/"--version", "v2"/g, `"--version", "${subsets.v2}"`)
    .replace(/exact: v1\b/g, `exact: ${subsets.v1}`)
    .replace(/exact: v2\b/g, `exact: ${subsets.v2}`);
}

/** A WorkloadEntry: what istiod makes an endpoint of, for a pod that is a process on loopback. */
export function workloadEntry(namespace: string, name: string, labels: Record<string, string>, ports: Record<string, number>, address = '127.0.0.1'): string {
  return JSON.stringify({
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace },
    spec: { address, labels, ports },
  });
}

/**
 * The pods' part of a rollout: the real Deployment and ReplicaSet controllers (the kube
 * harness runs kube-controller-manager) made each Deployment's ReplicaSet and Pods; the
 * test reports the Pods Ready as a kubelet would, so the candidate counts as available.
 * Returns each Deployment's pod-template-hash (what labels extproc's series).
 */
export async function replicaSetsFor(kc: KubeConfig, namespace: string): Promise<Record<string, string>> {
  const apps = kc.makeApiClient(AppsV1Api);
  const hashes: Record<string, string> = {};
  for (const d of (await apps.listNamespacedDeployment({ namespace })).items) {
    const name = d.metadata!.name!;
    const available = await makeDeploymentAvailable(kc, namespace, name, 60_000);
    const hash = await currentHash(kc, available);
    if (!hash) throw new Error(`Deployment ${namespace}/${name} has no ReplicaSet for its template`);
    hashes[name] = hash;
  }
  return hashes;
}

export interface RunningChild {
  process: ManagedProcess;
  port: number;
  stop(): Promise<void>;
}

/** `fledge sim` on a free loopback port, ready when it lists its model. */
export async function startSimProcess(dir: string, version: string, knobs: KnobsInput): Promise<RunningChild> {
  const port = await freePort();
  const knobsFile = join(dir, `sim-${version}-${port}.yaml`);
  writeFileSync(knobsFile, toYaml(knobs));
  const proc = startProcess(`sim-${version}`, process.execPath, [CLI, 'sim', '--host', '127.0.0.1', '--port', String(port), '--version', version, '--knobs', knobsFile], join(dir, `sim-${version}-${port}.log`));
  await waitForHttp(proc, `http://127.0.0.1:${port}/v1/models`);
  return { process: proc, port, stop: () => proc.stop() };
}

export interface ExtprocChild extends RunningChild {
  adminPort: number;
  /** The probe Secret as the Pod would mount it (what the prober signs with), when the config names one. */
  probeSecretFile?: string;
  debugState(): Promise<{ services: { service: string; stable: string; canary?: string; canaryWeight: number; killed?: boolean }[] }>;
}

/**
 * `fledge extproc` with the config of manifests/extproc.yaml's ConfigMap (routing from
 * VirtualServices), on free loopback ports, plus `extraConfig` merged on top. `gatewayUrl`
 * replaces the gateway Service's address in `shadow.via` (the copies' way back through the
 * gateway), as the prober's --url is replaced: on this machine the gateway is a loopback port.
 */
export async function startExtprocProcess(dir: string, kubeconfig: string, flagsFile: string, extraConfig: Record<string, unknown> = {}, gatewayUrl?: string): Promise<ExtprocChild> {
  const configMap = parseAllDocuments(manifest('extproc.yaml'))
    .map((d) => d.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> })
    .find((d) => d.kind === 'ConfigMap' && d.metadata?.name === 'fledge-extproc-config');
  const text = configMap?.data?.['extproc.yaml'];
  if (!text) throw new Error('manifests/extproc.yaml: ConfigMap fledge-extproc-config has no extproc.yaml');
  const configFile = join(dir, 'extproc.yaml');
  const config = parseYaml(text) as { probes?: { secretFile?: string }; quality?: { golden?: { file?: string } }; shadow?: { via?: string } } & Record<string, unknown>;
  if (gatewayUrl !== undefined) {
    if (!config.shadow?.via) throw new Error('manifests/extproc.yaml: the config has no shadow.via to point at the gateway');
    config.shadow.via = gatewayUrl;
  }
  // The Pod's mounted paths, on this machine: the probe Secret and the golden set in the image.
  let probeSecretFile: string | undefined;
  if (config.probes?.secretFile) {
    const secretFile = join(dir, 'probe-secret');
    probeSecretFile = secretFile;
    writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    config.probes.secretFile = secretFile;
  }
  if (config.quality?.golden?.file?.startsWith('/app/')) config.quality.golden.file = resolve(MANIFESTS, "..", config.quality.golden.file.slice('/app/'.length));
  writeFileSync(configFile, toYaml({ ...config, ...extraConfig }));
  const port = await freePort();
  const adminPort = await freePort();
  const proc = startProcess(
    'extproc',
    process.execPath,
    [CLI, 'extproc', '--config', configFile, '--routing-source', 'virtualservice', '--kubeconfig', kubeconfig, '--flags-file', flagsFile, '--host', '127.0.0.1', '--port', String(port), '--admin-port', String(adminPort)],
    join(dir, 'extproc.log'),
  );
  await waitForHttp(proc, `http://127.0.0.1:${adminPort}/readyz`);
  return {
    process: proc,
    port,
    adminPort,
    ...(probeSecretFile ? { probeSecretFile } : {}),
    stop: () => proc.stop(),
    async debugState() {
      return (await (await fetch(`http://127.0.0.1:${adminPort}/debug/state`)).json()) as never;
    },
  };
}

/** `fledge controller` as its ServiceAccount, all namespaces, ready when its admin port says so. */
export async function startControllerProcess(dir: string, kube: KubeHarness, args: string[]): Promise<RunningChild> {
  const kubeconfig = await kube.writeKubeconfig(await kube.kubeconfigFor('fledge-controller', 'fledge-system'), 'controller');
  const port = await freePort();
  const proc = startProcess('controller', process.execPath, [CLI, 'controller', '--kubeconfig', kubeconfig, '--admin-port', String(port), ...args], join(dir, 'controller.log'));
  await waitForHttp(proc, `http://127.0.0.1:${port}/readyz`);
  return { process: proc, port, stop: () => proc.stop() };
}

export interface ProberChild extends RunningChild {
  args: string[];
}

/**
 * `fledge probe` with the arguments of manifests/prober.yaml's container, as its
 * ServiceAccount, with what differs on this machine: the gateway's Service address is its
 * loopback port, the mounted Secret a file, the admin port a free one, and the rate
 * multiplied by the test's time scale (the policy's pauses are divided by it: the probes
 * per pause stay what the manifest gives a real cluster).
 */
export async function startProberProcess(dir: string, kubeconfig: string, opts: { gatewayUrl: string; secretFile: string; timeScale: number }): Promise<ProberChild> {
  const deployment = parseAllDocuments(manifest('prober.yaml'))
    .map((d) => d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: { name: string; args?: string[] }[] } } } })
    .find((d) => d.kind === 'Deployment');
  const manifestArgs = deployment?.spec?.template?.spec?.containers?.find((c) => c.name === 'prober')?.args;
  if (!manifestArgs?.length) throw new Error('manifests/prober.yaml: no Deployment with a container "prober" and args');
  const adminPort = await freePort();
  const replaced: Record<string, (value: string) => string> = {
    '--url': () => opts.gatewayUrl,
    '--secret-file': () => opts.secretFile,
    '--host': () => '127.0.0.1',
    '--admin-port': () => String(adminPort),
    '--rate': (value) => String(Number(value) * opts.timeScale),
  };
  const args = manifestArgs.map((arg) => {
    const [name, value] = arg.split(/=(.*)/s, 2) as [string, string | undefined];
    const replace = replaced[name];
    return replace && value !== undefined ? `${name}=${replace(value)}` : arg;
  });
  for (const name of Object.keys(replaced)) if (!args.some((a) => a.startsWith(`${name}=`))) throw new Error(`manifests/prober.yaml: the prober's args have no ${name}=…`);
  const proc = startProcess('prober', process.execPath, [CLI, ...args, `--kubeconfig=${kubeconfig}`], join(dir, 'prober.log'));
  await waitForHttp(proc, `http://127.0.0.1:${adminPort}/readyz`);
  return { process: proc, port: adminPort, args, stop: () => proc.stop() };
}
