/**
 * Silent fail-open detection. Envoy's ext_proc filter runs with failure_mode_allow, so when
 * it never reaches extproc (EnvoyFilter not applied, ext_proc cluster missing or
 * unreachable, a rejected :authority) every request still succeeds on the plain weighted
 * route and nothing looks wrong, except that extproc decided none of them. This compares
 * the service's request counter with extproc's decision counter over the same window.
 */

export interface DecisionCoverageQueries {
  /** Requests that reached the service (PromQL; {{service}} and {{namespace}} are filled in). */
  traffic: string;
  /** extproc's routing decisions for the service, same window. */
  decisions: string;
}

/** Istio's standard request metric, counted once per reporter (a request seen by the gateway and the sidecar is one request). */
export const DEFAULT_TRAFFIC_QUERY =
  'max(sum by (reporter) (increase(istio_requests_total{destination_service_name="{{service}}",destination_service_namespace="{{namespace}}"}[2m])))';
export const DEFAULT_DECISIONS_QUERY = 'sum(increase(fledge_extproc_decisions_total{service="{{service}}"}[2m]))';
/** Fewer requests than this in the window prove nothing either way. */
export const DEFAULT_MIN_REQUESTS = 20;

export interface DecisionCoverage {
  service: string;
  /** Requests in the window (0 when the query found no series). */
  requests: number;
  /** Decisions in the window (0 when the query found no series). */
  decisions: number;
  minRequests: number;
}

/** The pause message when traffic flowed and extproc decided none of it; undefined otherwise. Pure. */
export function silentFailOpen(c: DecisionCoverage): string | undefined {
  if (!(c.requests >= c.minRequests) || c.decisions > 0) return undefined;
  return `EnvoyFilter not applied or ext_proc cluster unreachable: ${Math.round(c.requests)} requests reached ${c.service} but extproc decided none`;
}

/** Fills {{name}} placeholders; an unknown placeholder is an error naming it (a typo in a flag must not query nonsense). */
export function fillQuery(template: string, vars: Record<string, string>): string {
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (_m, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`query template uses {{${name}}}; known placeholders: ${Object.keys(vars).map((k) => `{{${k}}}`).join(', ')}`);
    return value;
  });
}
