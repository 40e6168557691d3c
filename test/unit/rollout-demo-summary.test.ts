import { describe, expect, it } from 'vitest';
import type { AnalysisRunState, MetricRunState } from '../../controller/analysis/run.js';
import type { RolloutStatus } from '../../controller/kube/rollout-status.js';
import { loadDefaultPolicy } from '../../controller/policy/load.js';
import { RolloutRecorder } from '../../local/rollout-demo-recorder.js';
import { summarizeRollout } from '../../local/rollout-demo-summary.js';

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

  it('reports a rollout that never settled as unfinished, and NaN as null', () => {
    const nan = run(100);
    nan.metrics[0]!.measurements[0]!.value = [Number.NaN];
    const s = summarizeRollout({ name: 'x', policy, final: status({ stepIndex: 2, phase: 'Paused', message: 'inconclusive' }), runs: [nan], lastStepIndex: 2, requests: 0, failedRequests: 0 });
    expect(s.outcome).toBe('unfinished');
    expect(s.analyses[0]!.value).toBeNull();
    expect(s.steps.at(-1)).toBe('stopped in phase Paused: inconclusive');
  });
});
