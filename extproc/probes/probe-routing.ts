import type { ServiceRouting } from '../routing/state.js';
import type { ProbeRejection, ProbeVerifier } from './probe-token.js';

/**
 * The version a probe header pins this request to, or undefined when it must be treated
 * as an ordinary user request: no verifier (probes off), no header, a header that does
 * not verify, a mirrored copy, or a version that may not serve now (neither the stable
 * nor a live canary of the service).
 */
export function probeVersion(
  state: ServiceRouting | undefined,
  shadow: boolean,
  header: string | undefined,
  verifier: ProbeVerifier | undefined,
  onRejected: (why: ProbeRejection | 'not-serving') => void,
): string | undefined {
  if (header === undefined || !verifier || !state || shadow) return undefined;
  const verdict = verifier.verify(state.service, header);
  if (!verdict.ok) {
    onRejected(verdict.why);
    return undefined;
  }
  const mayServe = verdict.version === state.stable || (verdict.version === state.canary && !state.killed);
  if (!mayServe) {
    onRejected('not-serving');
    return undefined;
  }
  return verdict.version;
}
