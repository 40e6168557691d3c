/**
 * Resolves what a candidate Deployment's rollout acts on: its VirtualService, the stable and
 * canary subsets (annotations, else inferred from the DestinationRule subsets and the
 * Deployments' pod labels such as `version`), and both versions' pod-template-hash (the
 * newest ReplicaSet of each Deployment), which the analysis queries select series by.
 */
import { AppsV1Api, CustomObjectsApi, type KubeConfig, type V1Deployment, type V1ReplicaSet } from '@kubernetes/client-node';
import { ISTIO_GROUP, ISTIO_VERSION, subsetForPodLabels, weightedRouteProblem, type DestinationRule, type VirtualService } from '../traffic/istio/virtual-service.js';
import { VS_ANNOTATIONS } from '../../common/virtualservice-annotations.js';
import { apiErrorText, isNotFound } from './api-errors.js';
import { ANNOTATION, type RolloutTarget } from './rollout-status.js';
import { stableJson } from './stable-json.js';

export type TargetResolution =
  | { kind: 'ready'; target: RolloutTarget }
  /** The input is wrong: the rollout is Invalid until someone fixes it. */
  | { kind: 'invalid'; problem: string }
  /** Not there yet (e.g. the Deployment's ReplicaSet); try again shortly. */
  | { kind: 'waiting'; reason: string };

const POD_TEMPLATE_HASH = 'pod-template-hash';
const REVISION = 'deployment.kubernetes.io/revision';

/** Deployments of a namespace, e.g. from the controller's informer cache. */
export type DeploymentLister = (namespace: string) => Promise<readonly V1Deployment[]>;
/** DestinationRules of a namespace, likewise. */
export type DestinationRuleLister = (namespace: string) => Promise<readonly DestinationRule[]>;

export interface TargetListers {
  deployments?: DeploymentLister;
  destinationRules?: DestinationRuleLister;
}

// Lists with resourceVersion "0" are served from the API server's watch cache instead of a
// quorum read from etcd: slightly stale at worst, which the next reconcile corrects.
const FROM_WATCH_CACHE = '0';

export class TargetResolver {
  private readonly custom: CustomObjectsApi;
  private readonly apps: AppsV1Api;
  private readonly listDeployments: DeploymentLister;
  private readonly listRules: DestinationRuleLister;

  constructor(kubeConfig: KubeConfig, listers: TargetListers = {}) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.listDeployments = listers.deployments ?? (async (namespace) => (await this.apps.listNamespacedDeployment({ namespace, resourceVersion: FROM_WATCH_CACHE })).items);
    this.listRules = listers.destinationRules ?? ((namespace) => this.fetchDestinationRules(namespace));
  }

  async resolve(deployment: V1Deployment): Promise<TargetResolution> {
    const namespace = deployment.metadata!.namespace!;
    const name = deployment.metadata!.name!;
    const annotations = deployment.metadata?.annotations ?? {};
    const vsName = annotations[ANNOTATION.virtualService]!;
    const invalid = (problem: string): TargetResolution => ({ kind: 'invalid', problem });

    let vs: VirtualService;
    try {
      vs = (await this.custom.getNamespacedCustomObject({ group: ISTIO_GROUP, version: ISTIO_VERSION, plural: 'virtualservices', namespace, name: vsName })) as VirtualService;
    } catch (err) {
      if (isNotFound(err)) return invalid(`VirtualService ${namespace}/${vsName} (from ${ANNOTATION.virtualService}) not found`);
      throw new Error(`reading VirtualService ${namespace}/${vsName} failed: ${apiErrorText(err)}`);
    }

    const hosts = new Set((vs.spec.http ?? []).flatMap((h) => (h.route ?? []).map((r) => shortHost(r.destination.host))));
    const rules = await this.listRules(namespace);
    const rule = rules.find((dr) => dr.spec.host !== undefined && hosts.has(shortHost(dr.spec.host)));
    if (!rule) return invalid(`no DestinationRule in ${namespace} for the host(s) ${[...hosts].join(', ') || '(none)'} of VirtualService ${namespace}/${vsName}`);
    const ruleName = `DestinationRule ${namespace}/${rule.metadata?.name}`;
    const known = (rule.spec.subsets ?? []).map((s) => s.name);

    const podLabels = deployment.spec?.template?.metadata?.labels ?? {};
    let canary = annotations[ANNOTATION.canarySubset];
    if (!canary) {
      const matches = subsetForPodLabels(rule, podLabels);
      if (matches.length !== 1) {
        return invalid(`cannot infer the canary subset of Deployment ${namespace}/${name}: ${matches.length ? `several` : 'no'} subsets of ${ruleName} match its pod labels (version=${podLabels['version'] ?? 'unset'})${matches.length ? `: ${matches.join(', ')}` : ''}; set ${ANNOTATION.canarySubset}`);
      }
      canary = matches[0]!;
    }
    if (!known.includes(canary)) return invalid(`${ruleName} has no subset "${canary}" (the canary subset); it has: ${known.join(', ') || 'none'}`);
    let stable = annotations[ANNOTATION.stableSubset];
    if (!stable) {
      const partners = new Set((vs.spec.http ?? []).filter((h) => (h.route ?? []).some((r) => r.destination.subset === canary)).flatMap((h) => (h.route ?? []).map((r) => r.destination.subset)).filter((s): s is string => !!s && s !== canary && known.includes(s)));
      const others = known.filter((s) => s !== canary);
      const candidates = partners.size === 1 ? [...partners] : others.length === 1 ? others : [];
      if (candidates.length !== 1) return invalid(`cannot infer the stable subset for canary subset "${canary}" from ${ruleName} (subsets: ${known.join(', ') || 'none'}); set ${ANNOTATION.stableSubset}`);
      stable = candidates[0]!;
    }
    for (const [role, subset] of [['canary', canary], ['stable', stable]] as const) {
      if (!known.includes(subset)) return invalid(`${ruleName} has no subset "${subset}" (the ${role} subset); it has: ${known.join(', ') || 'none'}`);
    }
    if (stable === canary) return invalid(`stable and canary subsets are both "${stable}"`);
    const routeProblem = weightedRouteProblem(vs, { stable, canary });
    if (routeProblem) return invalid(routeProblem);

    const canaryHash = await this.newestHash(deployment, true);
    if (!canaryHash) return { kind: 'waiting', reason: `Deployment ${namespace}/${name} has no ReplicaSet for its current pod template yet` };
    const stableLabels = rule.spec.subsets!.find((s) => s.name === stable)!.labels ?? {};
    const stableDeployment = await this.findDeploymentFor(namespace, stableLabels, name);
    const stableHash = stableDeployment ? ((await this.newestHash(stableDeployment)) ?? '') : '';
    return { kind: 'ready', target: { virtualService: vsName, stableSubset: stable, canarySubset: canary, canaryHash, stableHash, service: extprocServiceName(vs) } };
  }

  private async fetchDestinationRules(namespace: string): Promise<DestinationRule[]> {
    try {
      const list = (await this.custom.listNamespacedCustomObject({ group: ISTIO_GROUP, version: ISTIO_VERSION, plural: 'destinationrules', namespace, resourceVersion: FROM_WATCH_CACHE })) as { items: DestinationRule[] };
      return list.items;
    } catch (err) {
      throw new Error(`listing DestinationRules in ${namespace} failed: ${apiErrorText(err)}`);
    }
  }

  private async findDeploymentFor(namespace: string, labels: Record<string, string>, exclude: string): Promise<V1Deployment | undefined> {
    if (Object.keys(labels).length === 0) return undefined;
    const items = await this.listDeployments(namespace).catch((err: unknown) => {
      throw new Error(`listing Deployments in ${namespace} failed: ${apiErrorText(err)}`);
    });
    // Deployments are matched on their pod template (what the subset selects), not their own labels.
    return items.find((d) => d.metadata?.name !== exclude && Object.entries(labels).every(([k, v]) => d.spec?.template?.metadata?.labels?.[k] === v));
  }

  /**
   * pod-template-hash of the Deployment's newest ReplicaSet (highest revision). With
   * `current`, only if that ReplicaSet runs the Deployment's present template: right after a
   * template change the Deployment controller has not made the new one yet.
   */
  private async newestHash(deployment: V1Deployment, current = false): Promise<string | undefined> {
    const namespace = deployment.metadata!.namespace!;
    const match = deployment.spec?.selector?.matchLabels ?? {};
    const labelSelector = Object.entries(match).map(([k, v]) => `${k}=${v}`).join(',');
    let items: V1ReplicaSet[];
    try {
      items = (await this.apps.listNamespacedReplicaSet({ namespace, resourceVersion: FROM_WATCH_CACHE, ...(labelSelector ? { labelSelector } : {}) })).items;
    } catch (err) {
      throw new Error(`listing ReplicaSets of Deployment ${namespace}/${deployment.metadata?.name} failed: ${apiErrorText(err)}`);
    }
    const owned = items
      .filter((rs) => (rs.metadata?.ownerReferences ?? []).some((o) => o.kind === 'Deployment' && o.uid === deployment.metadata?.uid))
      .filter((rs) => rs.metadata?.labels?.[POD_TEMPLATE_HASH]);
    owned.sort((a, b) => revision(b) - revision(a));
    const newest = owned[0];
    if (!newest || (current && !sameTemplate(newest, deployment))) return undefined;
    return newest.metadata?.labels?.[POD_TEMPLATE_HASH];
  }
}

/** The ReplicaSet's template is the Deployment's plus the pod-template-hash label. */
function sameTemplate(rs: V1ReplicaSet, deployment: V1Deployment): boolean {
  const { [POD_TEMPLATE_HASH]: _hash, ...rsLabels } = rs.spec?.template?.metadata?.labels ?? {};
  const dLabels = deployment.spec?.template?.metadata?.labels ?? {};
  return stableJson(rsLabels) === stableJson(dLabels) && stableJson(rs.spec?.template?.spec) === stableJson(deployment.spec?.template?.spec);
}


function revision(rs: V1ReplicaSet): number {
  const n = Number(rs.metadata?.annotations?.[REVISION]);
  return Number.isFinite(n) ? n : 0;
}

/** The name extproc labels the service's decisions with (the same rule as its VirtualService source). */
function extprocServiceName(vs: VirtualService): string {
  return vs.metadata?.annotations?.[VS_ANNOTATIONS.service] || shortHost(vs.spec.hosts?.[0] ?? vs.metadata?.name ?? '').toLowerCase();
}

/** "model.ns.svc.cluster.local" and "model" name the same in-namespace host. */
function shortHost(host: string): string {
  return host.split('.')[0] ?? host;
}
