import MurmurHash3 from 'imurmurhash';
import { headerText, type HeaderValue } from '../../proto/ext-proc.js';
import type { AlwaysSampleRule, QualityConfig } from './config.js';

const BUCKETS = 10_000;

/** Why a request's response is (or is not) sampled. */
export type SampleReason = 'rate' | 'rule' | 'golden' | 'probe' | 'none';

/**
 * The request's sampling bucket: murmur3 of its x-request-id, so a test (or anyone who
 * knows the id) can predict the decision. No id: not sampled by rate.
 */
export function sampleBucket(requestId: string): number {
  // Hashed in pieces (the same murmur3 as of the joined string): no string built per request.
  return MurmurHash3('sample/').hash(requestId).result() % BUCKETS;
}

export function sampledByRate(requestId: string | undefined, rate: number): boolean {
  if (!requestId || rate <= 0) return false;
  return sampleBucket(requestId) < Math.round(rate * BUCKETS);
}

export function serviceRate(config: QualityConfig, service: string): number {
  return config.sampling.services[service] ?? config.sampling.defaultRate;
}

export interface RequestFacts {
  service: string;
  requestId: string | undefined;
  path: string;
  headers: ReadonlyMap<string, string>;
}

export function matchesRule(rule: AlwaysSampleRule, facts: RequestFacts): boolean {
  if (rule.service !== undefined && rule.service !== facts.service) return false;
  if (rule.pathPrefix !== undefined && !facts.path.startsWith(rule.pathPrefix)) return false;
  if (rule.header !== undefined) {
    const value = facts.headers.get(rule.header);
    if (value === undefined) return false;
    if (rule.equals !== undefined && value !== rule.equals) return false;
  }
  return true;
}

/** The pure sampling decision on request headers. */
export function sampleOnHeaders(config: QualityConfig, facts: RequestFacts): { reason: SampleReason; probability: number } {
  if (config.sampling.always.some((r) => matchesRule(r, facts))) return { reason: 'rule', probability: 1 };
  const rate = serviceRate(config, facts.service);
  if (sampledByRate(facts.requestId, rate)) return { reason: 'rate', probability: rate };
  return { reason: 'none', probability: rate };
}

/** Headers as a map (lower-case keys); with `only`, just those (the hot path decodes no more than it reads). */
export function headerMap(headers: HeaderValue[] | undefined, only?: ReadonlySet<string>): Map<string, string> {
  const map = new Map<string, string>();
  for (const h of headers ?? []) {
    const key = h.key.toLowerCase();
    if (only === undefined || only.has(key)) map.set(key, headerText(h));
  }
  return map;
}

/** The request headers sampling reads: the request id, the path and the rules' headers. */
export function sampledHeaderNames(config: QualityConfig): Set<string> {
  const names = new Set(['x-request-id', ':path']);
  for (const rule of config.sampling.always) if (rule.header !== undefined) names.add(rule.header);
  return names;
}
