/**
 * A shadow pair on its way to the pairwise LLM judge: the prompt and both answer texts, on
 * the Redis Stream `quality.judge.pairStream` (fledge:judge:pairs). This is the only place
 * shadow mode lets text leave extproc, and only with the judge configured (docs/shadow.md,
 * "Privacy"). The judge worker reads it (extproc/quality/judge/pair-judging.ts).
 */
import { readWhole, type Observation } from '../quality/observation.js';
import type { PairKind, ShadowPair } from './pair-store.js';

export interface PairJudgeSample {
  service: string;
  /** The candidate under shadow (also on noise pairs: the rollout they belong to). */
  version: string;
  rollout_hash: string;
  pair: PairKind;
  request_id: string;
  prompt: string;
  /** The stable's answer to the user. */
  stable: string;
  /** The candidate's answer (pair candidate) or the stable's second answer (pair noise). */
  other: string;
  /** Milliseconds since the epoch; the worker expires pairs older than its TTL. */
  enqueued_at: string;
}

const KEYS = ['service', 'version', 'rollout_hash', 'pair', 'request_id', 'prompt', 'stable', 'other', 'enqueued_at'] as const;

export function pairSampleFields(s: PairJudgeSample): string[] {
  return KEYS.flatMap((k) => [k, s[k]]);
}

export function parsePairSampleFields(fields: string[]): PairJudgeSample | undefined {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
  if (!KEYS.every((k) => m.has(k))) return undefined;
  const pair = m.get('pair');
  if (pair !== 'candidate' && pair !== 'noise') return undefined;
  if (!Number.isFinite(Number(m.get('enqueued_at')))) return undefined;
  return Object.fromEntries(KEYS.map((k) => [k, m.get(k)!])) as unknown as PairJudgeSample;
}

/** What a side holds for the judge while it waits for its partner: its answer, and (the stable's side) the prompt. */
export interface JudgeText {
  answer: string;
  prompt?: string;
}

/**
 * The text an answer contributes to a pairwise judgement, or undefined when it has none to
 * give: the judge is off, or the answer is not whole (an error, a cut or oversized body, no
 * text; its failure is counted by the features already), or the stable side has no prompt.
 * Cut to `maxChars`, like single judge samples.
 */
export function judgeTextOf(enabled: boolean, observation: Observation, status: number | undefined, prompt: string | undefined, withPrompt: boolean, maxChars: number): JudgeText | undefined {
  if (!enabled) return undefined;
  const whole = status !== undefined && status < 300 && readWhole(observation) && observation.text !== '';
  if (!whole) return undefined;
  if (!withPrompt) return { answer: observation.text.slice(0, maxChars) };
  if (prompt === undefined || prompt === '') return undefined;
  return { answer: observation.text.slice(0, maxChars), prompt: prompt.slice(0, maxChars) };
}

/** The judge sample of a completed pair, or undefined when either side brought no text. */
export function pairJudgeSample(pair: ShadowPair, labels: { service: string; version: string; rolloutHash: string }, now: number): PairJudgeSample | undefined {
  const prompt = pair.text?.stable?.prompt;
  const stable = pair.text?.stable?.answer;
  const other = pair.text?.other?.answer;
  if (prompt === undefined || stable === undefined || other === undefined) return undefined;
  return { service: labels.service, version: labels.version, rollout_hash: labels.rolloutHash, pair: pair.kind, request_id: pair.requestId, prompt, stable, other, enqueued_at: String(now) };
}
