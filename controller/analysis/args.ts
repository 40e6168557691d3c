/**
 * AnalysisTemplate arguments: `{{args.canary-hash}}` in a query is replaced by the arg's
 * value. Values come from the template's `spec.args` defaults, overridden by the analysis
 * step's `args` (a literal `value`, or `valueFrom.podTemplateHashValue: Stable | Latest`).
 *
 * fledge always provides `canary-hash` (Latest) and `stable-hash` (Stable) unless the policy
 * defines them, so the seed's later analysis steps, which pass no args, still resolve.
 * The baseline (`stable`) query is the same query with every Latest-hash arg set to the
 * stable hash: "the same measurement, for the stable version, in the same window".
 */
import type { StepArg } from '../policy/schema.js';

export type HashSource = 'Stable' | 'Latest';

export interface ArgSpec {
  name: string;
  value?: string;
  fromHash?: HashSource;
}

export interface HashContext {
  /** Identifies the candidate's series (e.g. the rollout_hash label value of the canary). */
  canaryHash: string;
  /** Identifies the stable version's series. */
  stableHash: string;
}

export interface ResolvedArgs {
  /** Values for the canary measurement. */
  canary: Record<string, string>;
  /** Values for the baseline measurement: Latest-hash args carry the stable hash. */
  baseline: Record<string, string>;
}

export const IMPLICIT_ARGS: readonly ArgSpec[] = [
  { name: 'canary-hash', fromHash: 'Latest' },
  { name: 'stable-hash', fromHash: 'Stable' },
];

const ARG_REF = /\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}/g;

export class UnknownArgError extends Error {
  override name = 'UnknownArgError';
  constructor(readonly missing: string[], what: string) {
    super(`${what} uses ${missing.map((m) => `{{args.${m}}}`).join(', ')}, which ${missing.length === 1 ? 'has' : 'have'} no value`);
  }
}

/** Template defaults first, then step args on top (later wins), then the implicit hash args. */
export function mergeArgs(templateArgs: readonly { name: string; value?: string }[], stepArgs: readonly StepArg[]): ArgSpec[] {
  const byName = new Map<string, ArgSpec>();
  for (const a of templateArgs) {
    const existing = byName.get(a.name);
    // Two templates declaring the same arg: a value beats a bare declaration.
    if (!existing || a.value !== undefined) byName.set(a.name, a.value === undefined ? { name: a.name } : { name: a.name, value: a.value });
  }
  for (const a of stepArgs) {
    byName.set(a.name, a.valueFrom ? { name: a.name, fromHash: a.valueFrom.podTemplateHashValue } : { name: a.name, value: a.value ?? '' });
  }
  for (const implicit of IMPLICIT_ARGS) {
    const existing = byName.get(implicit.name);
    if (!existing || (existing.value === undefined && existing.fromHash === undefined)) byName.set(implicit.name, implicit);
  }
  return [...byName.values()];
}

export function resolveArgs(specs: readonly ArgSpec[], hashes: HashContext): ResolvedArgs {
  const canary: Record<string, string> = {};
  const baseline: Record<string, string> = {};
  for (const spec of specs) {
    if (spec.fromHash) {
      canary[spec.name] = spec.fromHash === 'Latest' ? hashes.canaryHash : hashes.stableHash;
      baseline[spec.name] = hashes.stableHash;
    } else if (spec.value !== undefined) {
      canary[spec.name] = spec.value;
      baseline[spec.name] = spec.value;
    }
  }
  return { canary, baseline };
}

/** Names of the args a text refers to, in order of first use. */
export function referencedArgs(text: string): string[] {
  return [...new Set([...text.matchAll(ARG_REF)].map((m) => m[1]!))];
}

/** Replaces every `{{args.NAME}}`; throws UnknownArgError naming all args without a value. */
export function substituteArgs(text: string, values: Readonly<Record<string, string>>, what = 'the query'): string {
  const missing = referencedArgs(text).filter((name) => !Object.hasOwn(values, name));
  if (missing.length) throw new UnknownArgError(missing, what);
  return text.replace(ARG_REF, (_whole, name: string) => values[name]!);
}
