/**
 * The golden prober: sends golden-set prompts to every version of each service under
 * rollout, through Envoy, each request signed for one version (x-fledge-probe) so that
 * extproc pins it there and evaluates the answer. It learns the versions from the same
 * routing state extproc reads (a file, or VirtualService annotations) and reads nothing
 * back: the verdicts are extproc's, on its /metrics.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { PROBE_HEADER, signProbe } from '../probes/probe-token.js';
import type { GoldenEntry } from '../quality/evaluators/golden-set.js';
import type { RoutingStateSource, ServiceRouting } from '../routing/state.js';
import { postJson } from './post.js';

/** Golden answers are one sentence (docs/quality.md). */
export const PROBE_MAX_TOKENS = 64;

export interface ProberOptions {
  /** Envoy's listener (local stack) or an ingress/sidecar address, e.g. http://127.0.0.1:10000. */
  url: string;
  /** The Host header per service; `{service}` is replaced by the service name. */
  hostTemplate: string;
  routing: RoutingStateSource;
  entries: readonly GoldenEntry[];
  secret: string;
  /** Probes per second per version. */
  ratePerVersion: number;
  /** Also probe services with no canary (only their stable). */
  allServices: boolean;
  /** Per probe. */
  timeoutMs: number;
  /** Probes of one version in flight at once; a slow model is not queued up beyond this. */
  maxInFlight: number;
  ttlSeconds: number;
  logger: Logger;
  registry?: Registry;
  now?: () => number;
}

export interface ProbeTarget {
  service: string;
  version: string;
}

/** Which versions to probe now: stable and canary of each service under rollout (not a killed canary). */
export function probeTargets(services: readonly ServiceRouting[], allServices: boolean): ProbeTarget[] {
  const targets: ProbeTarget[] = [];
  for (const s of services) {
    const canary = s.canary !== undefined && !s.killed ? s.canary : undefined;
    if (canary === undefined && !allServices) continue;
    targets.push({ service: s.service, version: s.stable });
    if (canary !== undefined) targets.push({ service: s.service, version: canary });
  }
  return targets;
}

export function entriesFor(entries: readonly GoldenEntry[], service: string): GoldenEntry[] {
  return entries.filter((e) => e.service === undefined || e.service === service);
}

export class Prober {
  readonly registry: Registry;
  private readonly sent: Counter<'service' | 'version' | 'result'>;
  private readonly duration: Histogram<'service' | 'version'>;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Map<string, number>();
  private readonly cursor = new Map<string, number>();
  private readonly controller = new AbortController();
  private readonly warnedEmpty = new Set<string>();
  private readonly url: URL;

  constructor(private readonly options: ProberOptions) {
    this.url = new URL(options.url);
    this.registry = options.registry ?? new Registry();
    this.sent = new Counter({ name: 'fledge_prober_probes_total', help: 'Golden probes sent, by service, version and result (answered: an HTTP answer came back, whatever its status; failed: no answer; skipped: too many in flight).', labelNames: ['service', 'version', 'result'], registers: [this.registry] });
    this.duration = new Histogram({ name: 'fledge_prober_probe_seconds', help: 'Seconds per answered probe.', labelNames: ['service', 'version'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30], registers: [this.registry] });
  }

  /** One tick every 1/rate seconds: one probe per target. */
  start(): void {
    const periodMs = Math.max(10, 1000 / this.options.ratePerVersion);
    this.timer = setInterval(() => this.tick(), periodMs);
    this.timer.unref?.();
    this.tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.controller.abort();
  }

  tick(): void {
    for (const target of probeTargets(this.options.routing.snapshot(), this.options.allServices)) {
      void this.probeOnce(target);
    }
  }

  /** Sends one probe to one version; resolves with the HTTP status, or undefined when none came back. */
  async probeOnce(target: ProbeTarget): Promise<number | undefined> {
    const { service, version } = target;
    const entries = entriesFor(this.options.entries, service);
    if (entries.length === 0) {
      if (!this.warnedEmpty.has(service)) this.options.logger.warn({ service }, 'no golden entry covers this service: nothing to probe');
      this.warnedEmpty.add(service);
      return undefined;
    }
    const key = `${service}/${version}`;
    const busy = this.inFlight.get(key) ?? 0;
    if (busy >= this.options.maxInFlight) {
      this.sent.inc({ service, version, result: 'skipped' });
      return undefined;
    }
    const i = this.cursor.get(key) ?? 0;
    this.cursor.set(key, i + 1);
    const entry = entries[i % entries.length]!;
    this.inFlight.set(key, busy + 1);
    const started = performance.now();
    try {
      const now = (this.options.now ?? Date.now)();
      // Asked as a user asks: no sampling parameters, so a version's own defaults (its
      // temperature, say) are part of what the probe measures, as they are of what users get.
      // 64 tokens hold a one-sentence answer; a rambling one is cut there rather than cost more.
      const body = JSON.stringify({ model: service, messages: [{ role: 'user', content: entry.prompt }], max_tokens: PROBE_MAX_TOKENS });
      const signed = { [PROBE_HEADER]: signProbe(this.options.secret, service, version, now, this.options.ttlSeconds) };
      const host = this.options.hostTemplate.replaceAll('{service}', service);
      const response = await postJson(this.url, host, signed, body, AbortSignal.any([this.controller.signal, AbortSignal.timeout(this.options.timeoutMs)]));
      this.sent.inc({ service, version, result: 'answered' });
      this.duration.observe({ service, version }, (performance.now() - started) / 1000);
      if (response.servedBy !== undefined && response.servedBy !== version) this.options.logger.warn({ service, version, served: response.servedBy }, 'a probe was served by another version (is extproc using the same probe secret?)');
      return response.status;
    } catch (err) {
      this.sent.inc({ service, version, result: 'failed' });
      if (!this.controller.signal.aborted) this.options.logger.debug({ err: (err as Error).message, service, version }, 'probe failed');
      return undefined;
    } finally {
      this.inFlight.set(key, (this.inFlight.get(key) ?? 1) - 1);
    }
  }
}
