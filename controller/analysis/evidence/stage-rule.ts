/**
 * What a stage does with its metrics' evidence at one look (the rule the evidence bench
 * simulates, for the engine to adopt):
 * - any metric `worse` → act at once (that metric's action: rollback or pause-for-review);
 * - every metric `not-worse` → the stage ends now, however early;
 * - otherwise the stage goes on (is extended past its planned pause) until `capMs`, then
 *   pauses with "not enough evidence", naming the undecided metrics and their n.
 */
import type { MetricAction } from '../../policy/schema.js';
import type { EvidenceDecision } from './evidence-decision.js';

export type StageEvidenceAction =
  | { kind: 'worse'; action: MetricAction; decision: EvidenceDecision; message: string }
  | { kind: 'end-stage'; message: string }
  | { kind: 'continue' }
  | { kind: 'not-enough-evidence'; message: string };

export interface JudgedMetric {
  decision: EvidenceDecision;
  action: MetricAction;
}

export function stageEvidenceAction(metrics: readonly JudgedMetric[], elapsedMs: number, capMs: number): StageEvidenceAction {
  // A rollback outranks a review when both arrive in one look.
  const worse = [...metrics].filter((m) => m.decision.verdict === 'worse').sort((a, b) => Number(b.action === 'rollback') - Number(a.action === 'rollback'))[0];
  if (worse) return { kind: 'worse', action: worse.action, decision: worse.decision, message: `metric ${worse.decision.metric}: ${worse.decision.reason}; ${summarise(worse.decision)}` };
  const undecided = metrics.filter((m) => m.decision.verdict !== 'not-worse');
  if (undecided.length === 0) return { kind: 'end-stage', message: `every compared metric is not worse than stable (${metrics.map((m) => `${m.decision.metric}: ${summarise(m.decision)}`).join('; ')})` };
  if (elapsedMs >= capMs) {
    return { kind: 'not-enough-evidence', message: `not enough evidence: ${undecided.map((m) => `${m.decision.metric} undecided (${summarise(m.decision)})`).join('; ')}` };
  }
  return { kind: 'continue' };
}

/** "estimate 0.031 [0.004, 0.058], n canary 312 / stable 5930" */
export function summarise(d: Pick<EvidenceDecision, 'estimate' | 'interval' | 'n'>): string {
  const f = (x: number) => (Number.isFinite(x) ? String(Number(x.toPrecision(3))) : String(x));
  return `estimate ${f(d.estimate)} [${f(d.interval[0])}, ${f(d.interval[1])}], n canary ${Math.round(d.n.canary)} / stable ${Math.round(d.n.stable)}`;
}
