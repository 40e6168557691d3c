/**
 * Builds a model service in a fresh namespace of the test kube-apiserver the way a cluster
 * would have it: stable and candidate Deployments (their ReplicaSets, pod-template-hashes
 * and Pods made by the harness's real kube-controller-manager; the Pods reported Ready as a
 * kubelet would), a DestinationRule with version subsets and a VirtualService with
 * per-subset header routes ahead of the weighted route. Plus polling helpers that wait on
 * what the controller writes.
 */
import { randomBytes } from 'node:crypto';
import { currentHash, makeDeploymentAvailable } from './pods.js';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, Watch, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { EVENT_SOURCE } from '../../controller/kube/event-recorder.js';
import { parseStatus, type RolloutStatus } from '../../controller/kube/rollout-status.js';
import type { VirtualService } from '../../controller/traffic/istio/virtual-service.js';

export const VS_API = { group: 'networking.istio.io', version: 'v1', plural: 'virtualservices' } as const;
export const DR_API = { group: 'networking.istio.io', version: 'v1', plural: 'destinationrules' } as const;

export interface ModelService {
  namespace: string;
  stableHash: string;
  canaryHash: string;
  candidate: string;
  virtualService: string;
}

export interface ModelServiceOptions {
  /** Annotations on the candidate besides fledge.dev/virtual-service (e.g. fledge.dev/policy). */
  annotations?: Record<string, string>;
  /** ConfigMap fledge-policies data; none when undefined. */
  policies?: Record<string, string>;
  /** Leave out the VirtualService (the annotation still names it). */
  withoutVirtualService?: boolean;
  /** DestinationRule subsets; default v1 and v2 by version label. */
  subsets?: { name: string; labels: Record<string, string> }[];
  /** Leave the candidate un-annotated (the caller opts it in later). */
  optIn?: boolean;
  /** Report the candidate's Pods Ready (default true); false leaves them Pending, as while a model loads. */
  candidateReady?: boolean;
}

let namespaceCounter = 0;
export function freshNamespace(prefix: string): string {
  return `${prefix}-${++namespaceCounter}-${randomBytes(2).toString('hex')}`;
}

export function weightedVirtualService(name: string, namespace: string): VirtualService {
  const header = (subset: string) => ({
    name: `pinned-${subset}`,
    match: [{ headers: { 'x-fledge-version': { exact: subset } } }],
    route: [{ destination: { host: 'model', subset } }],
  });
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace },
    spec: {
      hosts: ['model'],
      http: [
        header('v1'),
        header('v2'),
        {
          name: 'weighted',
          route: [
            { destination: { host: 'model', subset: 'v1' }, weight: 100 },
            { destination: { host: 'model', subset: 'v2' }, weight: 0 },
          ],
        },
      ],
    },
  };
}

export async function createModelService(kc: KubeConfig, namespace: string, options: ModelServiceOptions = {}): Promise<ModelService> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  if (options.policies) await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'fledge-policies' }, data: options.policies } });
  await custom.createNamespacedCustomObject({
    ...DR_API,
    namespace,
    body: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'model', namespace },
      spec: { host: 'model', subsets: options.subsets ?? [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
    },
  });
  if (!options.withoutVirtualService) await custom.createNamespacedCustomObject({ ...VS_API, namespace, body: weightedVirtualService('model', namespace) });

  await createDeployment(apps, namespace, 'model-v1', 'v1');
  await createDeployment(apps, namespace, 'model-v2', 'v2');
  const stableHash = await hashOnceCreated(kc, namespace, 'model-v1');
  const canaryHash = await hashOnceCreated(kc, namespace, 'model-v2');
  await makeDeploymentAvailable(kc, namespace, 'model-v1');
  if (options.candidateReady !== false) await makeDeploymentAvailable(kc, namespace, 'model-v2');
  const service: ModelService = { namespace, stableHash, canaryHash, candidate: 'model-v2', virtualService: 'model' };
  if (options.optIn !== false) await annotate(kc, namespace, 'model-v2', { 'fledge.dev/virtual-service': 'model', ...options.annotations });
  return service;
}

async function createDeployment(apps: AppsV1Api, namespace: string, name: string, version: string): Promise<V1Deployment> {
  const labels = { app: 'model', version };
  // Kubernetes derives the pod-template-hash from the template alone, so equal templates in two
  // namespaces share a hash; the annotation keeps each test's series (selected by hash) apart.
  const template = { metadata: { labels, annotations: { 'fledge.test/namespace': namespace } }, spec: { containers: [{ name: 'model', image: 'example.invalid/model:latest' }] } };
  return apps.createNamespacedDeployment({ namespace, body: { metadata: { name, labels }, spec: { replicas: 1, selector: { matchLabels: labels }, template } } });
}

/** The pod-template-hash Kubernetes gave the Deployment's current template, once its ReplicaSet exists. */
export async function hashOnceCreated(kc: KubeConfig, namespace: string, name: string, timeoutMs = 30_000): Promise<string> {
  const apps = kc.makeApiClient(AppsV1Api);
  let hash: string | undefined;
  await waitUntil(`the ReplicaSet of Deployment ${namespace}/${name}`, async () => {
    const d = await apps.readNamespacedDeployment({ namespace, name });
    if ((d.status?.observedGeneration ?? 0) < (d.metadata?.generation ?? 0)) return false;
    hash = await currentHash(kc, d);
    return hash !== undefined;
  }, timeoutMs);
  return hash!;
}

export async function annotate(kc: KubeConfig, namespace: string, name: string, annotations: Record<string, string | null>): Promise<void> {
  await kc.makeApiClient(AppsV1Api).patchNamespacedDeployment({ namespace, name, body: { metadata: { annotations } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
}

export async function readStatus(kc: KubeConfig, namespace: string, name: string): Promise<{ status?: RolloutStatus; deployment: V1Deployment }> {
  const deployment = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ namespace, name });
  const text = deployment.metadata?.annotations?.['fledge.dev/status'];
  return text ? { status: parseStatus(text), deployment } : { deployment };
}

/** Polls the status annotation until `accept` holds; on time-out the error shows the last status. */
export async function waitForStatus(kc: KubeConfig, namespace: string, name: string, what: string, accept: (s: RolloutStatus) => boolean, timeoutMs = 30_000): Promise<RolloutStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: RolloutStatus | undefined;
  for (;;) {
    last = (await readStatus(kc, namespace, name)).status;
    if (last && accept(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} on ${namespace}/${name}; last status: ${last ? JSON.stringify({ phase: last.phase, step: last.step, weight: last.weight, message: last.message }) : 'none'}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function readVirtualService(kc: KubeConfig, namespace: string, name = 'model'): Promise<VirtualService> {
  return (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ ...VS_API, namespace, name })) as VirtualService;
}

/** [stable, canary] weights of the weighted route. */
export function weightsOf(vs: VirtualService): [number | undefined, number | undefined] {
  const route = vs.spec.http?.find((h) => h.name === 'weighted')?.route ?? [];
  return [route.find((r) => r.destination.subset === 'v1')?.weight, route.find((r) => r.destination.subset === 'v2')?.weight];
}

/** One spec generation of a VirtualService, as a watch saw it. */
export interface SpecGeneration {
  generation: number;
  weights: ReturnType<typeof weightsOf>;
}

/**
 * Every spec generation of a VirtualService from now on (the current one first), from a
 * watch: the API server delivers each change in order, so none is missed between polls.
 * Annotation-only writes keep the generation and are not listed twice.
 */
export async function watchSpecGenerations(kc: KubeConfig, namespace: string, name = 'model'): Promise<{ seen: SpecGeneration[]; upTo(generation: number): Promise<SpecGeneration[]>; stop(): void }> {
  const seen: SpecGeneration[] = [];
  let failure: unknown;
  const abort = await new Watch(kc).watch(
    `/apis/${VS_API.group}/${VS_API.version}/namespaces/${namespace}/${VS_API.plural}`,
    { fieldSelector: `metadata.name=${name}` },
    (_type: string, vs: VirtualService) => {
      const generation = vs.metadata?.generation ?? 0;
      if (seen.at(-1)?.generation !== generation) seen.push({ generation, weights: weightsOf(vs) });
    },
    (err: unknown) => {
      if (err) failure = err;
    },
  );
  await waitUntil(`the watch on VirtualService ${namespace}/${name} to start`, async () => seen.length > 0, 10_000);
  return {
    seen,
    async upTo(generation) {
      await waitUntil(`generation ${generation} of VirtualService ${namespace}/${name} on the watch`, async () => {
        if (failure) throw failure instanceof Error ? failure : new Error(String(failure));
        return (seen.at(-1)?.generation ?? 0) >= generation;
      }, 10_000);
      return seen;
    },
    stop: () => abort.abort(),
  };
}

export async function eventsFor(kc: KubeConfig, namespace: string, name: string): Promise<{ reason: string; message: string; type: string; host?: string; at: number }[]> {
  const list = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
  // fledge's own Events: the Deployment controller records its scaling on the same object.
  return list.items
    .filter((e) => e.source?.component === EVENT_SOURCE)
    .map((e) => ({ reason: e.reason ?? '', message: e.message ?? '', type: e.type ?? '', host: e.source?.host, at: new Date(e.firstTimestamp ?? 0).getTime() }))
    .sort((a, b) => a.at - b.at);
}

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${lastError}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The Deployment's Events once one with `reason` exists (the controller records them in the background, in order). */
export async function eventsOnceRecorded(kc: KubeConfig, namespace: string, name: string, reason: string, timeoutMs = 15_000, count = 1): ReturnType<typeof eventsFor> {
  let events: Awaited<ReturnType<typeof eventsFor>> = [];
  // Events are recorded after the status write: wait for them rather than read once.
  await waitUntil(`${count} Event(s) ${reason} on ${namespace}/${name}`, async () => {
    events = await eventsFor(kc, namespace, name);
    return events.filter((e) => e.reason === reason).length >= count;
  }, timeoutMs);
  return events;
}
