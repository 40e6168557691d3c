/**
 * The shadow report of one rollout: from its logged pairs, the candidate's pairs side by
 * side with the noise-floor pairs (the stable against itself): quantiles and a two-sample
 * test per continuous feature, flip rates with 95% Wilson intervals, the worst pairs and a
 * verdict in plain words. Pure: records in, report out.
 */
import type { ShadowPairRecord } from '../../extproc/shadow/pair-log.js';
import type { PairKind } from '../../extproc/shadow/pair-store.js';
import { wilsonInterval } from '../../common/wilson.js';
import { CONTINUOUS_FEATURES, FLIP_FEATURES, type ContinuousKey, type FlipKey } from './features.js';
import { mannWhitneyU, proportionDifference, quantiles, type MannWhitneyResult, type Quantiles } from './statistics.js';
import { verdictOf, type Verdict } from './verdict.js';
import { summarizePreferences, type PreferenceSummary } from './preferences.js';
import type { PreferenceRecord } from '../../extproc/shadow/preference-log.js';
import { worstPairs, type WorstPair } from './worst-pairs.js';

export interface FeatureSummary {
  key: ContinuousKey;
  label: string;
  unit: string;
  candidate: Quantiles | undefined;
  noise: Quantiles | undefined;
  /** Candidate vs noise; undefined without values of both kinds. */
  test: (MannWhitneyResult & { method: 'mann-whitney-u' }) | undefined;
}

export interface Rate {
  count: number;
  n: number;
  rate: number;
  ci95: [number, number];
}

export interface FlipSummary {
  key: FlipKey;
  label: string;
  candidate: Rate | undefined;
  noise: Rate | undefined;
  /** Candidate rate − noise rate with its 95% interval (Newcombe); undefined without both. */
  difference: { estimate: number; ci95: [number, number] } | undefined;
}

export interface ShadowReport {
  service: string;
  rolloutHash: string;
  /** The candidate version(s) named by the pairs. */
  versions: string[];
  n: Record<PairKind, number>;
  /** Log entries that did not parse. */
  unreadable: number;
  /** Unix ms of the oldest and newest pair. */
  from: number;
  to: number;
  /** The other rollout hashes with a log for this service. */
  otherRollouts: string[];
  verdict: Verdict;
  features: FeatureSummary[];
  flips: FlipSummary[];
  worst: WorstPair[];
  /** The pairwise LLM judge's preferences, when a judge ran (docs/shadow.md). */
  preferences?: PreferenceSummary;
}

export interface ReportContext {
  service: string;
  rolloutHash: string;
  unreadable?: number;
  otherRollouts?: string[];
  /** The judge's preferences of this rollout's pairs (none without a judge). */
  preferences?: readonly PreferenceRecord[];
  preferencesUnreadable?: number;
}

export function buildShadowReport(records: readonly ShadowPairRecord[], context: ReportContext): ShadowReport {
  if (records.length === 0) throw new RangeError(`no shadow pairs for ${context.service} rollout ${context.rolloutHash}`);
  const byKind = (kind: PairKind) => records.filter((r) => r.kind === kind);
  const candidate = byKind('candidate');
  const noise = byKind('noise');
  const features = CONTINUOUS_FEATURES.map((f): FeatureSummary => {
    const c = valuesOf(candidate, f.value);
    const o = valuesOf(noise, f.value);
    return {
      key: f.key,
      label: f.label,
      unit: f.unit,
      candidate: quantiles(c),
      noise: quantiles(o),
      test: c.length > 0 && o.length > 0 ? { method: 'mann-whitney-u', ...mannWhitneyU(c, o) } : undefined,
    };
  });
  const flips = FLIP_FEATURES.map((f): FlipSummary => {
    const c = rateOf(candidate, f);
    const o = rateOf(noise, f);
    return { key: f.key, label: f.label, candidate: c, noise: o, difference: c && o ? proportionDifference(c, o) : undefined };
  });
  const preferences = summarizePreferences(context.preferences ?? [], context.preferencesUnreadable);
  const ats = records.map((r) => r.at);
  const n = { candidate: candidate.length, noise: noise.length };
  return {
    service: context.service,
    rolloutHash: context.rolloutHash,
    versions: [...new Set(candidate.map((r) => r.version))].sort(),
    n,
    unreadable: context.unreadable ?? 0,
    from: Math.min(...ats),
    to: Math.max(...ats),
    otherRollouts: context.otherRollouts ?? [],
    verdict: verdictOf({ n, features, flips, ...(preferences ? { preferences } : {}) }),
    features,
    flips,
    worst: worstPairs(candidate),
    ...(preferences ? { preferences } : {}),
  };
}

/** The values of one feature in some pairs (pairs without it left out), for the plots too. */
export function valuesOf(records: readonly ShadowPairRecord[], value: (r: ShadowPairRecord) => number | undefined): number[] {
  const values: number[] = [];
  for (const r of records) {
    const v = value(r);
    if (v !== undefined && Number.isFinite(v)) values.push(v);
  }
  return values;
}

function rateOf(records: readonly ShadowPairRecord[], flip: { applies(r: ShadowPairRecord): boolean; flipped(r: ShadowPairRecord): boolean }): Rate | undefined {
  const applicable = records.filter((r) => flip.applies(r));
  if (applicable.length === 0) return undefined;
  const count = applicable.filter((r) => flip.flipped(r)).length;
  return { count, n: applicable.length, rate: count / applicable.length, ci95: wilsonInterval(count, applicable.length) };
}
