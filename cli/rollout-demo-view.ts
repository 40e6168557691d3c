/**
 * How `fledge demo` shows its rollouts: a progress bar per rollout in a terminal (one line
 * per change otherwise) while it runs, then the summary as text.
 */
import cliProgress from 'cli-progress';
import type { RolloutStatus } from '../controller/kube/rollout-status.js';
import { formatNumber } from '../controller/analysis/measurement.js';
import type { AnalysisEntry, EvidenceStageSummary, RolloutSummary } from '../local/rollout-demo-summary.js';

export interface RolloutProgress {
  update(name: string, status: RolloutStatus): void;
  note(line: string): void;
  stop(): void;
}

const stage = (s: RolloutStatus) => `step ${s.step}/${s.steps}  weight ${String(s.weight).padStart(3)}%  ${s.phase}`;

/** Bars in a TTY: value = step, total = the policy's steps. */
export function barProgress(names: string[], out: NodeJS.WriteStream): RolloutProgress {
  const width = Math.max(...names.map((n) => n.length));
  const multi = new cliProgress.MultiBar(
    { stream: out, format: '{name} [{bar}] {stage}  {message}', barsize: 24, hideCursor: true, clearOnComplete: false, autopadding: true, fps: 10 },
    cliProgress.Presets.shades_classic,
  );
  let stopped = false;
  const bars = new Map(names.map((n) => [n, multi.create(1, 0, { name: n.padEnd(width), stage: 'waiting for the controller', message: '' })]));
  return {
    update(name, status) {
      const message = status.message.length > 60 ? `${status.message.slice(0, 57)}...` : status.message;
      const done = status.phase === 'Promoted' ? status.steps : Math.min(status.stepIndex, status.steps);
      bars.get(name)?.setTotal(Math.max(status.steps, 1));
      bars.get(name)?.update(done, { stage: stage(status), message });
    },
    note(line) {
      multi.log(`${line}\n`);
    },
    stop() {
      if (stopped) return; // a second stop would move the cursor up over what was printed since
      stopped = true;
      multi.stop();
    },
  };
}

/** Without a TTY: one line per change. */
export function lineProgress(out: NodeJS.WritableStream): RolloutProgress {
  return {
    update(name, status) {
      out.write(`${new Date().toISOString().slice(11, 19)}  ${name}  ${stage(status)}  ${status.message}\n`);
    },
    note(line) {
      out.write(`${line}\n`);
    },
    stop() {},
  };
}

export function renderDemoSummary(rollouts: readonly RolloutSummary[], wallSeconds: number): string {
  const lines = ['', `Summary (${Math.round(wallSeconds)} s)`, ''];
  for (const r of rollouts) {
    lines.push(`${r.name}: ${r.outcome.toUpperCase()}  (${r.requests} requests, ${r.failedRequests} failed)`);
    lines.push('  steps:');
    r.steps.forEach((s, i) => lines.push(`    ${String(i + 1).padStart(2)}. ${s}`));
    const width = Math.max(0, ...r.analyses.map((a) => a.metric.length));
    for (const step of r.analysisSteps) {
      lines.push(`  analysis at ${step.weight}%: ${step.phase}`);
      for (const a of step.analyses) {
        lines.push(analysisLine(a, width));
      }
    }
    for (const stage of r.evidence) lines.push(...evidenceLines(stage));
    if (r.background) {
      lines.push(`  background analysis: ${r.background.phase}`);
      for (const a of r.background.analyses) {
        lines.push(analysisLine(a, width));
      }
    }
    if (r.breach) lines.push(`  breach: ${r.breach.metric} = ${r.breach.value === null ? 'no data' : formatNumber(r.breach.value)} (condition ${r.breach.threshold}, n=${r.breach.n ?? '-'})`);
    if (r.rollbackSeconds !== undefined) {
      lines.push(`  rollback: ${r.rollbackSeconds} s from the fault injected to Envoy giving the canary 0% of traffic`);
      lines.push(r.background ? '            (background analysis measures every minute of policy time, between step boundaries)' : '            (the policy analyses at the end of each pause: most of it is the rest of the pause)');
    }
    lines.push('');
  }
  return lines.join('\n');
}

const STAGE_OUTCOME: Record<EvidenceStageSummary['outcome'], string> = {
  'not-worse': 'ended on evidence, not worse than stable',
  worse: 'worse than stable: acted on at once',
  'not-enough-evidence': 'paused: not enough evidence',
  undecided: 'undecided when the rollout stopped',
};

/** "evidence at 5%: ended on evidence … after 23.4 s (pause 10m planned, 20 looks)", then each decision with n per arm. */
function evidenceLines(stage: EvidenceStageSummary): string[] {
  const f = (x: number | null) => (x === null ? '?' : formatNumber(Number(x.toPrecision(3))));
  const width = Math.max(0, ...stage.decisions.map((d) => d.metric.length));
  const head = `  evidence at ${stage.weight}%: ${STAGE_OUTCOME[stage.outcome]} after ${stage.seconds} s (pause ${stage.plannedPause} planned${stage.extended ? ', extended' : ''}, ${stage.looks} looks)`;
  return [
    head,
    ...stage.decisions.map(
      (d) => `    ${d.verdict.padEnd(9)}  ${d.metric.padEnd(width)}  estimate ${f(d.estimate)} [${f(d.interval[0])}, ${f(d.interval[1])}], margin ${d.margin}  (n canary ${d.n.canary ?? '?'} / stable ${d.n.stable ?? '?'})`,
    ),
  ];
}

/** One measurement: pass/FAIL, metric, value, condition, the stable's value when compared, n. */
function analysisLine(a: AnalysisEntry, width: number): string {
  const value = (a.value === null ? 'no data' : formatNumber(a.value)).padStart(10);
  const stable = a.stable === undefined ? '' : `, stable ${a.stable === null ? 'no data' : formatNumber(a.stable)}`;
  return `    ${a.passed ? 'pass' : 'FAIL'}  ${a.metric.padEnd(width)}  ${value}  against ${a.threshold}  (n=${a.n ?? '-'}${stable})`;
}

/** The `--json` document: the shape, plus the background analysis run and failedRequests. */
export function demoJson(rollouts: readonly RolloutSummary[]): object {
  return {
    rollouts: rollouts.map((r) => ({
      name: r.name,
      outcome: r.outcome,
      steps: r.steps,
      analyses: r.analyses,
      evidence: r.evidence,
      ...(r.background ? { background: r.background } : {}),
      ...(r.breach ? { breach: r.breach } : {}),
      ...(r.rollbackSeconds === undefined ? {} : { rollbackSeconds: r.rollbackSeconds }),
      failedRequests: r.failedRequests,
    })),
  };
}
