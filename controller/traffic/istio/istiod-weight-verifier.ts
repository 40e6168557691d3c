/**
 * Confirms through istiod that a canary weight is live in the proxies, not only written to
 * the VirtualService (Argo Rollouts' Istio verifyWeight is a no-op). Two debug endpoints of
 * istiod's HTTP port (ENABLE_DEBUG_ON_HTTP, on by default):
 * - /debug/config_dump?proxyID=<id>: the config istiod generated for that proxy from the push
 *   context it last pushed to it; its route version_info is that push's version;
 * - /debug/syncz: per proxy the RDS nonce last sent and the one the proxy ACKed. Nonces are
 *   the push version followed by a 36-character UUID.
 * A proxy has the weight live when the routes istiod last pushed to it carry the weight, and
 * the proxy ACKed an RDS push at least that recent (an ACK means Envoy applied it; a NACK
 * leaves the ACKed nonce behind). Proxies whose routes do not include the VirtualService are
 * out of scope (a Sidecar resource or exportTo hides it from them).
 */
import type { Logger } from '../../../common/logger.js';
import { routeWeights, type VirtualServiceRoutes } from './route-weights.js';

export interface WeightCheck extends VirtualServiceRoutes {
  weight: number;
}

export interface ProxyWeightResult {
  verified: boolean;
  /** Proxies that carry the VirtualService's routes. */
  proxies: number;
  /** Why not (yet) verified, or what was confirmed. */
  detail: string;
}

export interface IstiodWeightVerifierOptions {
  /** istiod's HTTP debug base URL, e.g. http://istiod.istio-system:8080. */
  debugUrl: string;
  /** How long to wait for the proxies to ACK (default 10 s). */
  timeoutMs?: number;
  pollMs?: number;
  logger?: Logger;
}

interface SyncStatus {
  proxy?: string;
  route_sent?: string;
  route_acked?: string;
}

const UUID_LENGTH = 36;

/** Push version of an xDS nonce, as a number that grows with every push ("<RFC3339>/<n><uuid>"). */
export function pushNumber(versionOrNonce: string | undefined, isNonce: boolean): number | undefined {
  if (!versionOrNonce) return undefined;
  const version = isNonce ? versionOrNonce.slice(0, -UUID_LENGTH) : versionOrNonce;
  const n = Number(version.slice(version.lastIndexOf('/') + 1));
  return Number.isInteger(n) ? n : undefined;
}

export class IstiodWeightVerifier {
  private readonly debugUrl: string;
  private readonly timeoutMs: number;
  private readonly pollMs: number;

  constructor(private readonly options: IstiodWeightVerifierOptions) {
    this.debugUrl = options.debugUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.pollMs = options.pollMs ?? 25;
  }

  /** Polls until every proxy carrying the VirtualService has `weight` live, or the timeout. */
  async waitForWeight(check: WeightCheck): Promise<ProxyWeightResult> {
    const deadline = Date.now() + this.timeoutMs;
    let last: ProxyWeightResult = { verified: false, proxies: 0, detail: 'not checked yet' };
    for (;;) {
      try {
        last = await this.checkOnce(check);
      } catch (err) {
        last = { verified: false, proxies: 0, detail: `istiod debug API at ${this.debugUrl}: ${(err as Error).message}` };
      }
      if (last.verified || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
    if (!last.verified) this.options.logger?.warn({ virtualService: `${check.namespace}/${check.name}`, weight: check.weight, detail: last.detail }, 'canary weight not confirmed live in the proxies');
    return last;
  }

  /** One look: which proxies carry the VirtualService, and have they all ACKed routes with the weight? */
  async checkOnce(check: WeightCheck): Promise<ProxyWeightResult> {
    const syncz = (await this.getJson('/debug/syncz')) as SyncStatus[];
    let carrying = 0;
    const pending: string[] = [];
    for (const proxy of syncz) {
      if (!proxy.proxy || !proxy.route_sent) continue;
      const dump = await this.getJson(`/debug/config_dump?proxyID=${encodeURIComponent(proxy.proxy)}`);
      const routes = routeWeights(dump, check);
      if (routes.canaryWeights.length === 0) continue;
      carrying++;
      const wrong = routes.canaryWeights.find((w) => w !== check.weight);
      if (wrong !== undefined) {
        pending.push(`${proxy.proxy}: istiod last pushed weight ${wrong}`);
        continue;
      }
      const pushed = pushNumber(routes.version, false);
      const acked = pushNumber(proxy.route_acked, true);
      if (proxy.route_acked !== proxy.route_sent || pushed === undefined || acked === undefined || acked < pushed) {
        pending.push(`${proxy.proxy}: routes of push ${routes.version ?? '?'} not ACKed yet`);
      }
    }
    if (carrying === 0) return { verified: false, proxies: 0, detail: `no proxy connected to istiod carries VirtualService ${check.namespace}/${check.name}` };
    if (pending.length > 0) return { verified: false, proxies: carrying, detail: pending.join('; ') };
    return { verified: true, proxies: carrying, detail: `${carrying} prox${carrying === 1 ? 'y' : 'ies'} ACKed canary weight ${check.weight}` };
  }

  private async getJson(path: string): Promise<unknown> {
    const res = await fetch(`${this.debugUrl}${path}`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    return res.json();
  }
}
