/**
 * The report's verdict in plain words: each difference between the candidate and the
 * stable that stands out from the stable's own noise floor, with the numbers behind it.
 * A continuous feature stands out when its Mann-Whitney p-value is below ALPHA; a flip when
 * the 95% interval of its rate's difference (candidate − noise) lies above 0. Pure.
 */
import type { PairKind } from '../../extproc/shadow/pair-store.js';
import type { FlipKey, ContinuousKey } from './features.js';
import type { FeatureSummary, FlipSummary, Rate } from './report.js';
import type { PreferenceSummary } from './preferences.js';

/** Five features are tested at once: 0.05 / 5 (Bonferroni) keeps the chance of a false alarm in an identical candidate near 5%. */
export const ALPHA = 0.01;
/** Below this many candidate pairs the verdict says the data is thin, whatever it finds. */
export const MIN_PAIRS = 20;

export interface VerdictInput {
  n: Record<PairKind, number>;
  features: readonly FeatureSummary[];
  flips: readonly FlipSummary[];
  preferences?: PreferenceSummary;
}

/** differs: something stands out; same: nothing does; unknown: no candidate or no noise pairs to tell by. */
export type VerdictStatus = 'differs' | 'same' | 'unknown';

export interface Verdict {
  status: VerdictStatus;
  /** Plain sentences, the most important first. */
  lines: string[];
}

export function verdictOf(input: VerdictInput): Verdict {
  const { n } = input;
  if (n.candidate === 0) return { status: 'unknown', lines: [`no candidate pairs (only ${n.noise} noise-floor pairs): is the shadow step mirroring traffic to the candidate?`] };
  const lines: string[] = [];
  const badFlips = input.flips.filter((f) => !GOOD_FLIPS.has(f.key) && standsOut(f));
  const features = input.features.filter((f) => f.test !== undefined && f.test.p < ALPHA && f.candidate && f.noise);
  for (const f of badFlips) lines.push(flipSentence(f));
  for (const f of features) lines.push(featureSentence(f));
  const judged = input.preferences;
  if (judged?.stableWinsExcess && judged.stableWinsExcess.ci95[0] > 0) lines.push(preferenceSentence(judged));
  for (const f of input.flips.filter((f) => GOOD_FLIPS.has(f.key) && standsOut(f))) lines.push(flipSentence(f));
  const status: VerdictStatus = lines.length > 0 ? 'differs' : n.noise === 0 ? 'unknown' : 'same';
  if (n.noise === 0) lines.push('no noise-floor pairs: the differences cannot be told from the stable\'s own variation (is the noise floor sampled?)');
  else if (lines.length === 0) lines.push(`no difference from the stable beyond its own noise floor (${n.candidate} candidate pairs, ${n.noise} noise pairs; every p ≥ ${ALPHA})`);
  if (n.candidate < MIN_PAIRS) lines.push(`only ${n.candidate} candidate pairs: too few to be sure (want ≥ ${MIN_PAIRS})`);
  return { status, lines };
}

const GOOD_FLIPS = new Set<FlipKey>(['goldenGained']);

/** The candidate flips more often than the noise floor (or, without noise pairs of the kind, than never). */
function standsOut(f: FlipSummary): boolean {
  if (!f.candidate || f.candidate.count === 0) return false;
  return f.difference ? f.difference.ci95[0] > 0 : f.candidate.ci95[0] > 0;
}

const FLIP_WORDS: Record<FlipKey, string> = {
  goldenLost: 'the candidate gets golden questions wrong that the stable gets right',
  goldenGained: 'the candidate gets golden questions right that the stable gets wrong',
  refusalGained: 'the candidate refuses where the stable answers',
  jsonValidLost: "the candidate's JSON is invalid where the stable's is valid",
  failedGained: 'the candidate fails where the stable answers',
  finishReasonChanged: "the candidate's answers end differently (finish reason changed)",
};

function preferenceSentence(p: PreferenceSummary): string {
  const c = p.candidate!.stable;
  return `the LLM judge prefers the stable's answer to the candidate's more often than to its own second answer (${c.count} of ${c.n}: ${ratePhrase(c)}; noise ${ratePhrase(p.noise!.stable)}; both orders asked)`;
}

function flipSentence(f: FlipSummary): string {
  const c = f.candidate!;
  const noise = f.noise ? `noise ${ratePhrase(f.noise)}` : 'no noise pairs';
  return `${FLIP_WORDS[f.key]} (${c.count} of ${c.n}: ${ratePhrase(c)}; ${noise})`;
}

export function ratePhrase(r: Rate): string {
  return `${percent(r.rate)}, 95% CI ${percent(r.ci95[0])}–${percent(r.ci95[1])}`;
}

function featureSentence(f: FeatureSummary): string {
  const c = f.candidate!.p50;
  const o = f.noise!.p50;
  const p = pPhrase(f.test!.p);
  // Which way: the medians, or when they tie, which sample tends to be larger.
  const up = c !== o ? c > o : f.test!.probabilityGreater > 0.5;
  const numbers = (what: string, fmt: (v: number) => string) => `(median ${what} ${fmt(c)} vs noise ${fmt(o)}, ${p})`;
  const key: ContinuousKey = f.key;
  switch (key) {
    case 'lengthRatio':
      return `the candidate's answers are ${lengthWords(c / o)} the stable's ${numbers('ratio', (v) => v.toFixed(2))}`;
    case 'latencyDeltaMs':
      return `the candidate answers ${Math.abs(c - o).toFixed(0)} ms ${up ? 'slower' : 'faster'} than the stable ${numbers('delta', signedMs)}`;
    case 'ttftDeltaMs':
      return `the candidate's first token comes ${Math.abs(c - o).toFixed(0)} ms ${up ? 'later' : 'sooner'} ${numbers('delta', signedMs)}`;
    case 'outputTokensDelta':
      return `the candidate writes ${Math.abs(c - o).toFixed(0)} ${up ? 'more' : 'fewer'} output tokens per answer ${numbers('delta', signed)}`;
    case 'similarity':
      return up
        ? `the candidate's answers are closer to the stable's than the stable's own repeats are ${numbers('similarity', (v) => v.toFixed(2))}`
        : `the candidate's answers differ from the stable's more than the stable's own answers differ from each other ${numbers('similarity', (v) => v.toFixed(2))}`;
  }
}

/** "twice as long as", "1.4 times as long as", "half as long as", "30% shorter than". */
export function lengthWords(ratio: number): string {
  if (ratio >= 1.9 && ratio < 2.1) return 'twice as long as';
  if (ratio >= 1.3) return `${ratio.toFixed(1)} times as long as`;
  if (ratio > 1) return `${Math.round((ratio - 1) * 100)}% longer than`;
  if (ratio > 0.45 && ratio <= 0.55) return 'half as long as';
  if (ratio < 0.7) return `${(1 / ratio).toFixed(1)} times shorter than`;
  if (ratio < 1) return `${Math.round((1 - ratio) * 100)}% shorter than`;
  return 'as long as';
}

export function pPhrase(p: number): string {
  if (p < 0.001) return 'p<0.001';
  return `p=${p < 0.01 ? p.toFixed(3) : p.toFixed(2)}`;
}

export function percent(x: number): string {
  const v = x * 100;
  return `${v > 0 && v < 1 ? v.toFixed(1) : v.toFixed(0)}%`;
}

const signed = (v: number) => `${v > 0 ? '+' : ''}${Number.isInteger(v) ? v : v.toFixed(1)}`;
const signedMs = (v: number) => `${signed(Math.round(v))} ms`;
