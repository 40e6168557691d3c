/**
 * What the demo sees of one rollout while it runs, from its status file polled often: every
 * analysis run (keyed by its start, the newest copy kept), the furthest step reached, and the
 * last status. The status keeps only the current and the previous run, so polling during the
 * rollout is the only way to have all of them at the end.
 */
import type { AnalysisRunState } from '../controller/analysis/run.js';
import type { RolloutStatus } from '../controller/kube/rollout-status.js';
import { ACTIVE_PHASES, type StageEvidence } from '../controller/engine/rollout-state.js';

/** An evidence stage as last seen: its evidence, when the stage began and at what weight. */
export interface RecordedStage {
  evidence: StageEvidence;
  stepStartedAt: number;
  weight: number;
}

export class RolloutRecorder {
  private readonly runs = new Map<number, AnalysisRunState>();
  private furthestActiveStep = -1;
  private last: RolloutStatus | undefined;
  private readonly stages = new Map<number, RecordedStage>();
  /** The weight each step ran at (a rollback sets 0 in the same status that ends the stage). */
  private readonly weights = new Map<number, number>();

  /** Folds one status in; true when what a person watches (phase, step, weight) changed. */
  observe(status: RolloutStatus): boolean {
    for (const run of [status.lastAnalysis, status.analysis]) if (run) this.runs.set(run.startedAt, run);
    if (ACTIVE_PHASES.includes(status.phase)) this.weights.set(status.stepIndex, status.weight);
    this.recordEvidence(status);
    if (ACTIVE_PHASES.includes(status.phase)) this.furthestActiveStep = Math.max(this.furthestActiveStep, status.stepIndex);
    const before = this.last;
    this.last = status;
    return !before || before.phase !== status.phase || before.stepIndex !== status.stepIndex || before.weight !== status.weight;
  }

  get status(): RolloutStatus | undefined {
    return this.last;
  }

  /** Every evidence stage seen, in step order, each with its newest evidence. */
  evidenceStages(): RecordedStage[] {
    return [...this.stages.entries()].sort(([a], [b]) => a - b).map(([, stage]) => stage);
  }

  /** The status keeps the evidence into the next step (whose analysis it judges): the stage's start and weight are those seen while it ran. */
  private recordEvidence(status: RolloutStatus): void {
    // lastEvidence first: a stage whose deciding look and the next steps came in one reconcile
    // is seen only there (its evidence never stood in a status of its own step's).
    for (const evidence of [status.lastEvidence, status.evidence]) {
      if (!evidence) continue;
      const known = this.stages.get(evidence.stepIndex);
      if (status.stepIndex === evidence.stepIndex) this.stages.set(evidence.stepIndex, { evidence, stepStartedAt: status.stepStartedAt, weight: this.weights.get(status.stepIndex) ?? status.weight });
      else if (known && evidence.looks >= known.evidence.looks) this.stages.set(evidence.stepIndex, { ...known, evidence });
    }
  }

  /** Every analysis run seen, oldest first. */
  analysisRuns(): AnalysisRunState[] {
    return [...this.runs.values()].sort((a, b) => a.startedAt - b.startedAt);
  }

  /** The index of the last step the rollout worked on (the policy's length once promoted). */
  lastStepIndex(): number {
    const final = this.last;
    if (!final) return -1;
    // Promoted: past the last step; RolledBack/Failed: the step that broke; otherwise where it is.
    if (final.phase === 'Promoted') return final.stepIndex;
    return Math.max(this.furthestActiveStep, final.stepIndex);
  }
}
