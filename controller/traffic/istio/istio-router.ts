/**
 * TrafficRouter on an Istio VirtualService. Every change is read-modify-write on a fresh
 * copy with its resourceVersion: on 409 Conflict someone else changed the object since we
 * read it, so we read it again and re-apply only our change. Their edit is never
 * overwritten, and ours is applied on top of it.
 */
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../../common/logger.js';
import { apiErrorText, isConflict, isNotFound } from '../../kube/api-errors.js';
import { TrafficRoutingError, type TrafficRouter } from '../router.js';
import type { GuardrailThresholds } from '../../../extproc/guardrail/thresholds.js';
import type { IstiodWeightVerifier } from './istiod-weight-verifier.js';
import { applyGuardrailAnnotation, applyHeaderRoutes, applyShadow, applyPromotion, applyRoutingAnnotations, applyWeight, ensureRouteToken, retireCanaryAnnotation, type RolloutHashes, ISTIO_GROUP, ISTIO_VERSION, weightedRouteProblem, type SubsetPair, type VirtualService } from './virtual-service.js';

const VS = { group: ISTIO_GROUP, version: ISTIO_VERSION, plural: 'virtualservices' } as const;
export const MAX_CONFLICT_RETRIES = 8;

export interface VirtualServiceRef {
  namespace: string;
  name: string;
}

/** Changes the object in place; returns false when it already is as wanted (no write). */
export type VirtualServiceChange = (vs: VirtualService) => boolean | Promise<boolean>;

export class VirtualServiceUpdater {
  private readonly api: CustomObjectsApi;
  // The object as our last read or write left it. An update starts from this copy instead of
  // a fresh GET; if anyone changed the object since, the replace fails with 409 and we read it.
  private readonly lastSeen = new Map<string, VirtualService>();

  constructor(
    kubeConfig: KubeConfig,
    private readonly logger?: Logger,
  ) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async get(ref: VirtualServiceRef): Promise<VirtualService> {
    try {
      const vs = (await this.api.getNamespacedCustomObject({ ...VS, ...ref })) as VirtualService;
      this.lastSeen.set(keyOf(ref), structuredClone(vs));
      return vs;
    } catch (err) {
      this.lastSeen.delete(keyOf(ref));
      if (isNotFound(err)) throw new TrafficRoutingError(`VirtualService ${ref.namespace}/${ref.name} not found`);
      throw new TrafficRoutingError(`reading VirtualService ${ref.namespace}/${ref.name} failed: ${apiErrorText(err)}`);
    }
  }

  /** Read, change, replace with the read resourceVersion; on conflict start over. Returns the number of writes (0 or 1). */
  async update(ref: VirtualServiceRef, change: VirtualServiceChange, what: string): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const remembered = attempt === 1 ? this.lastSeen.get(keyOf(ref)) : undefined;
      const vs = remembered ? structuredClone(remembered) : await this.get(ref);
      if (!(await change(vs))) {
        // Our copy may be outdated: "nothing to change" is only trusted from a fresh read.
        if (remembered) continue;
        return 0;
      }
      try {
        const written = (await this.api.replaceNamespacedCustomObject({ ...VS, ...ref, body: vs, fieldManager: 'fledge-controller' })) as VirtualService;
        this.lastSeen.set(keyOf(ref), structuredClone(written));
        return 1;
      } catch (err) {
        this.lastSeen.delete(keyOf(ref));
        if (isNotFound(err)) throw new TrafficRoutingError(`VirtualService ${ref.namespace}/${ref.name} not found`);
        if (isConflict(err) && attempt < MAX_CONFLICT_RETRIES) {
          this.logger?.info({ virtualService: `${ref.namespace}/${ref.name}`, attempt, what }, 'VirtualService changed meanwhile; re-reading and re-applying our change');
          continue;
        }
        throw new TrafficRoutingError(`updating VirtualService ${ref.namespace}/${ref.name} (${what}) failed after ${attempt} attempt(s): ${apiErrorText(err)}`);
      }
    }
  }
}

function keyOf(ref: VirtualServiceRef): string {
  return `${ref.namespace}/${ref.name}`;
}

export class IstioVirtualServiceRouter implements TrafficRouter {
  readonly description: string;
  /**
   * Only with an istiod verifier: whether the proxies run `weight` (istiod pushed it and they
   * ACKed it). Without one there is nothing beyond the VirtualService to check.
   */
  readonly verifyWeight?: (weight: number) => Promise<boolean>;

  constructor(
    private readonly updater: VirtualServiceUpdater,
    private readonly ref: VirtualServiceRef,
    private readonly subsets: SubsetPair,
    private readonly hashes?: RolloutHashes,
    verifier?: IstiodWeightVerifier,
    /** The policy's guardrail limits, annotated for extproc while the canary may serve. */
    private readonly guardrail?: GuardrailThresholds,
  ) {
    this.description = `VirtualService ${ref.namespace}/${ref.name}`;
    if (verifier) {
      this.verifyWeight = async (weight) => {
        const result = await verifier.waitForWeight({ ...ref, stableSubset: subsets.stable, canarySubset: subsets.canary, weight });
        return result.verified;
      };
    }
  }

  async setWeight(weight: number): Promise<void> {
    await this.updater.update(this.ref, (vs) => this.maintained(vs, applyWeight(this.checked(vs), this.subsets, weight), true), `canary weight ${weight}`);
  }

  async setMirror(percent: number): Promise<void> {
    await this.updater.update(this.ref, (vs) => this.maintained(vs, applyShadow(this.checked(vs), this.subsets, percent), true), `shadow ${percent}%`);
  }

  /**
   * One update: the candidate takes the weighted route and becomes the stable subset in the
   * annotations extproc reads; only its token-matched per-version route is left.
   */
  async promoteCandidate(): Promise<void> {
    await this.updater.update(
      this.ref,
      (vs) => {
        const promoted = applyPromotion(this.checked(vs), this.subsets, this.hashes);
        const token = ensureRouteToken(vs);
        const routes = applyHeaderRoutes(vs, { stable: this.subsets.canary, canary: this.subsets.stable }, false);
        const guardrail = applyGuardrailAnnotation(vs, undefined);
        return promoted || token || routes || guardrail;
      },
      `promote ${this.subsets.canary} to stable`,
    );
  }

  /** Weight 0, no mirror, no canary annotation, no canary header route: one write. */
  async retireCandidate(): Promise<void> {
    await this.updater.update(
      this.ref,
      (vs) => {
        const checked = this.checked(vs);
        const weight = applyWeight(checked, this.subsets, 0);
        const mirror = applyShadow(checked, this.subsets, 0);
        return this.maintained(vs, weight || mirror, false);
      },
      'retire the candidate',
    );
  }

  /**
   * Every write also keeps what extproc and the data plane rely on, in the same update: the
   * route token, the routing annotations (the canary's only while it may serve) and the
   * token-matched per-version routes.
   */
  private maintained(vs: VirtualService, routeChanged: boolean, canaryServes: boolean): boolean {
    const token = ensureRouteToken(vs);
    const annotations = canaryServes ? (this.hashes ? applyRoutingAnnotations(vs, this.subsets, this.hashes) : false) : retireCanaryAnnotation(vs, this.subsets);
    const headerRoutes = applyHeaderRoutes(vs, this.subsets, canaryServes);
    const guardrail = applyGuardrailAnnotation(vs, canaryServes ? this.guardrail : undefined);
    return routeChanged || token || annotations || headerRoutes || guardrail;
  }

  private checked(vs: VirtualService): VirtualService {
    // Someone may have removed our route since the rollout was validated.
    const problem = weightedRouteProblem(vs, this.subsets);
    if (problem) throw new TrafficRoutingError(problem);
    return vs;
  }
}
