import { describe, expect, it } from 'vitest';
import type { AnalysisRunState, MetricRunState } from '../../controller/analysis/run.js';
import type { RolloutStatus } from '../../controller/kube/rollout-status.js';
import { loadDefaultPolicy } from '../../controller/policy/load.js';
import { RolloutRecorder } from '../../local/rollout-demo-recorder.js';
import { summarizeRollout } from '../../local/rollout-demo-summary.js';
import { renderDemoSummary } from '../../cli/rollout-demo-view.js';
import type { EvidenceDecision } from '../../controller/analysis/evidence/evidence-decision.js';

const policy = loadDefaultPolicy();
const METRICS = ['error-rate', 'p95-latency', 'quality-score', 'hallucination-rate', 'cost-per-request'];

function run(startedAt: number, failing?: { metric: string; value: number }): AnalysisRunState {
  const metrics: MetricRunState[] = METRICS.map((name) => {
    const failed = failing?.metric === name;
    const value = failed ? failing!.value : 0.01;
    return {
      name,
      phase: failed ? 'Failed' : 'Successful',
      count: 1,
      successful: failed ? 0 : 1,
      failed: failed ? 1 : 0,
      inconclusive: 0,
      error: 0,
      consecutiveError: 0,
      measurements: [{ phase: failed ? 'Failed' : 'Successful', startedAt, finishedAt: startedAt + 5, value: [value], n: 120, ...(failed ? { threshold: 'result[0] <= 0.05' } : {}) }],
    };
  });
  return { startedAt, phase: failing ? 'Failed' : 'Successful', metrics };
}

function status(over: Partial<RolloutStatus>): RolloutStatus {
  return { version: 1, policy: 'default', phase: 'Progressing', stepIndex: 0, weight: 0, stepStartedAt: 0, message: '', updatedAt: 0, step: 1, steps: policy.steps.length, ...over };
}

describe('rollout demo summary', () => {
  it('keeps every analysis run seen while polling, though the status holds only two', () => {
    const recorder = new RolloutRecorder();
    expect(recorder.observe(status({ stepIndex: 1, weight: 5 }))).toBe(true);
    expect(recorder.observe(status({ stepIndex: 1, weight: 5 }))).toBe(false);
    recorder.observe(status({ stepIndex: 4, weight: 25, lastAnalysis: run(100) }));
    recorder.observe(status({ stepIndex: 7, weight: 50, lastAnalysis: run(200) }));
    recorder.observe(status({ stepIndex: 9, weight: 100, phase: 'Promoted', lastAnalysis: run(300) }));
    const s = summarizeRollout({ name: 'chat-v2', policy, final: recorder.status, runs: recorder.analysisRuns(), lastStepIndex: recorder.lastStepIndex(), requests: 10, failedRequests: 0 });
    expect(s.outcome).toBe('promoted');
    expect(s.analysisSteps.map((a) => a.weight)).toEqual([5, 25, 50]);
    expect(s.analyses).toHaveLength(15);
    expect(s.analyses[0]).toEqual({ metric: 'error-rate', value: 0.01, threshold: 'result[0] <= 0.01', passed: true, n: 120 });
    expect(s.steps).toHaveLength(policy.steps.length + 1);
    expect(s.breach).toBeUndefined();
  });

  it('names the breach and times the rollback from the fault to traffic off the canary', () => {
    const recorder = new RolloutRecorder();
    recorder.observe(status({ stepIndex: 4, weight: 25, lastAnalysis: run(100) }));
    recorder.observe(status({ stepIndex: 5, weight: 0, phase: 'RolledBack', message: 'metric hallucination-rate failed', lastAnalysis: run(200, { metric: 'hallucination-rate', value: 0.27 }) }));
    const s = summarizeRollout({
      name: 'assistant-v2', policy, final: recorder.status, runs: recorder.analysisRuns(), lastStepIndex: recorder.lastStepIndex(), requests: 10, failedRequests: 1, faultAt: 1_000, trafficOffAt: 31_234,
    });
    expect(s.outcome).toBe('rolled-back');
    expect(s.breach).toEqual({ metric: 'hallucination-rate', value: 0.27, threshold: 'result[0] <= 0.05', n: 120 });
    expect(s.rollbackSeconds).toBe(30.23);
    expect(s.failedRequests).toBe(1);
    // Up to the analysis that failed, then the verdict.
    expect(s.steps.slice(-2)).toEqual(['analysis ai-quality-check: Failed', 'rolled back to 0%: metric hallucination-rate failed']);
  });

  it('names the background analysis breach that stopped the rollout mid-stage', () => {
    const recorder = new RolloutRecorder();
    const background = run(50, { metric: 'hallucination-rate', value: 0.3 });
    background.metrics = background.metrics.filter((m) => m.name !== 'cost-per-request');
    background.metrics[0]!.phase = 'Running';
    recorder.observe(status({ stepIndex: 4, weight: 25, lastAnalysis: run(100) }));
    recorder.observe(status({ stepIndex: 4, weight: 0, phase: 'RolledBack', message: 'background analysis ai-quality-guard: metric hallucination-rate failed', lastAnalysis: run(100), background }));
    const s = summarizeRollout({ name: 'assistant-v2', policy, final: recorder.status, runs: recorder.analysisRuns(), lastStepIndex: recorder.lastStepIndex(), requests: 10, failedRequests: 0, faultAt: 1_000, trafficOffAt: 4_000 });
    expect(s.breach).toEqual({ metric: 'hallucination-rate', value: 0.3, threshold: 'result[0] <= 0.05', n: 120 });
    expect(s.background?.phase).toBe('Failed');
    expect(s.background?.analyses.map((a) => [a.metric, a.passed])).toEqual([['error-rate', true], ['p95-latency', true], ['quality-score', true], ['hallucination-rate', false]]);
    expect(s.analyses.every((a) => a.passed)).toBe(true);
    expect(s.rollbackSeconds).toBe(3);
    expect(s.steps.slice(-2)).toEqual(['pause 15m', 'rolled back to 0%: background analysis ai-quality-guard: metric hallucination-rate failed']);
  });

  it('keeps each evidence stage: its weight, how it ended, how long it took, and each decision with n per arm', () => {
    const decision = (metric: string, verdict: EvidenceDecision['verdict'], canary: number, stable: number, estimate = 0.001): EvidenceDecision => ({
      metric, test: 'proportions', margin: 0.03, confidence: 0.95, verdict, estimate, interval: [estimate - 0.02, estimate + 0.02], n: { canary, stable }, reason: verdict,
    });
    const recorder = new RolloutRecorder();
    // The 5% stage looked twice and ended on evidence 16.4 s in; its decisions stay in the status into the analysis step.
    recorder.observe(status({ stepIndex: 1, weight: 5, stepStartedAt: 10_000, evidence: { stepIndex: 1, looks: 1, lastLookAt: 11_000, decisions: [decision('hallucination-rate', 'undecided', 20, 300)] } }));
    recorder.observe(status({ stepIndex: 1, weight: 5, stepStartedAt: 10_000, evidence: { stepIndex: 1, looks: 2, lastLookAt: 26_400, decisions: [decision('hallucination-rate', 'not-worse', 251.6, 3100)] } }));
    recorder.observe(status({ stepIndex: 2, weight: 5, stepStartedAt: 26_400, evidence: { stepIndex: 1, looks: 2, lastLookAt: 26_400, concluded: true, decisions: [decision('hallucination-rate', 'not-worse', 251.6, 3100)] } }));
    // The 25% stage: shown worse at its first look, rolled back.
    recorder.observe(status({ stepIndex: 4, weight: 25, stepStartedAt: 30_000, lastAnalysis: run(27_000) }));
    recorder.observe(status({ stepIndex: 4, weight: 0, phase: 'RolledBack', stepStartedAt: 30_000, message: 'metric hallucination-rate: worse', lastAnalysis: run(27_000), evidence: { stepIndex: 4, looks: 1, lastLookAt: 31_000, decisions: [decision('hallucination-rate', 'worse', 90, 900, 0.4)] } }));
    const s = summarizeRollout({ name: 'assistant-v2', policy, final: recorder.status, runs: recorder.analysisRuns(), evidence: recorder.evidenceStages(), lastStepIndex: recorder.lastStepIndex(), requests: 10, failedRequests: 0 });
    expect(s.evidence.map(({ weight, outcome, plannedPause, seconds, looks, extended }) => ({ weight, outcome, plannedPause, seconds, looks, extended }))).toEqual([
      { weight: 5, outcome: 'not-worse', plannedPause: '10m', seconds: 16.4, looks: 2, extended: false },
      { weight: 25, outcome: 'worse', plannedPause: '15m', seconds: 1, looks: 1, extended: false },
    ]);
    expect(s.evidence[0]!.decisions).toEqual([{ metric: 'hallucination-rate', verdict: 'not-worse', estimate: 0.001, interval: [0.001 - 0.02, 0.001 + 0.02], margin: 0.03, n: { canary: 252, stable: 3100 } }]);
    // No analysis failed: the comparison that rolled it back is the breach.
    expect(s.breach).toEqual({ metric: 'hallucination-rate', value: 0.4, threshold: 'compare: stable, margin 0.03', n: 90 });
    const text = renderDemoSummary([s], 60);
    expect(text).toContain('  evidence at 5%: ended on evidence, not worse than stable after 16.4 s (pause 10m planned, 2 looks)');
    expect(text).toMatch(/ {4}not-worse {2}hallucination-rate {2}estimate 0\.001 \[-0\.019, 0\.021\], margin 0\.03 {2}\(n canary 252 \/ stable 3,?100\)/);
    expect(text).toContain('  evidence at 25%: worse than stable: acted on at once after 1 s');
  });

  it('reports a rollout that never settled as unfinished, and NaN as null', () => {
    const nan = run(100);
    nan.metrics[0]!.measurements[0]!.value = [Number.NaN];
    const s = summarizeRollout({ name: 'x', policy, final: status({ stepIndex: 2, phase: 'Paused', message: 'inconclusive' }), runs: [nan], lastStepIndex: 2, requests: 0, failedRequests: 0 });
    expect(s.outcome).toBe('unfinished');
    expect(s.analyses[0]!.value).toBeNull();
    expect(s.steps.at(-1)).toBe('stopped in phase Paused: inconclusive');
  });
});
