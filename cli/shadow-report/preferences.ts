/**
 * The pairwise judge's preferences in the report: per kind (candidate pairs, noise pairs),
 * the share of judged pairs in which the judge preferred the stable's answer, the other
 * answer, neither, and in which its two orders disagreed, each with a 95% Wilson interval;
 * and how much more often the stable wins against the candidate than against itself
 * (Newcombe's interval of the difference). Pure.
 */
import { wilsonInterval } from '../../common/wilson.js';
import type { PreferenceRecord } from '../../extproc/shadow/preference-log.js';
import type { PairKind } from '../../extproc/shadow/pair-store.js';
import type { Rate } from './report.js';
import { proportionDifference } from './statistics.js';

export interface KindPreferences {
  /** Judged pairs of this kind. */
  n: number;
  stable: Rate;
  /** The answer in the candidate's seat won (the stable's second answer, on noise pairs). */
  candidate: Rate;
  tie: Rate;
  /** Among the ties: the two orders disagreed. */
  inconsistent: Rate;
}

export interface PreferenceSummary {
  candidate: KindPreferences | undefined;
  noise: KindPreferences | undefined;
  /** Stable-win share on candidate pairs minus on noise pairs, with its 95% interval; undefined without both. */
  stableWinsExcess: { estimate: number; ci95: [number, number] } | undefined;
  unreadable: number;
}

/** Rows of the judge's table: what was preferred, on candidate pairs (stable vs candidate) and noise pairs (stable vs stable again). */
export const PREFERENCE_ROWS = [
  ['stable preferred', 'stable'],
  ['other preferred (candidate / stable again)', 'candidate'],
  ['tie', 'tie'],
  ['  of which the orders disagreed', 'inconsistent'],
] as const;

export function summarizePreferences(records: readonly PreferenceRecord[], unreadable = 0): PreferenceSummary | undefined {
  if (records.length === 0) return undefined;
  const of = (kind: PairKind) => kindPreferences(records.filter((r) => r.pair === kind));
  const candidate = of('candidate');
  const noise = of('noise');
  return { candidate, noise, stableWinsExcess: candidate && noise ? proportionDifference(candidate.stable, noise.stable) : undefined, unreadable };
}

function kindPreferences(records: readonly PreferenceRecord[]): KindPreferences | undefined {
  const n = records.length;
  if (n === 0) return undefined;
  const rate = (count: number): Rate => ({ count, n, rate: count / n, ci95: wilsonInterval(count, n) });
  const count = (test: (r: PreferenceRecord) => boolean) => rate(records.filter(test).length);
  return { n, stable: count((r) => r.preferred === 'stable'), candidate: count((r) => r.preferred === 'candidate'), tie: count((r) => r.preferred === 'tie'), inconsistent: count((r) => r.inconsistent) };
}
