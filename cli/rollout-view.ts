/** What `fledge status` shows of a managed Deployment, from its annotations. */
import type { V1Deployment } from '@kubernetes/client-node';
import { formatNumber } from '../controller/analysis/measurement.js';
import type { AnalysisRunState } from '../controller/analysis/run.js';
import type { StageEvidence } from '../controller/engine/rollout-state.js';
import { ANNOTATION, parseStatus, type RolloutStatus } from '../controller/kube/rollout-status.js';

export interface RolloutView {
  namespace: string;
  rollout: string;
  phase: string;
  step: string;
  weight: number | null;
  analysis: string;
  message: string;
  status?: RolloutStatus;
}

export function isManaged(d: V1Deployment): boolean {
  return d.metadata?.annotations?.[ANNOTATION.virtualService] !== undefined;
}

export function viewOf(d: V1Deployment): RolloutView {
  return viewOfStatus(d.metadata?.namespace ?? '', d.metadata?.name ?? '', d.metadata?.annotations?.[ANNOTATION.status]);
}

/** The view of one rollout from its status JSON (the annotation, or a local status file). */
export function viewOfStatus(namespace: string, rollout: string, text: string | undefined): RolloutView {
  const base = { namespace, rollout };
  if (!text) return { ...base, phase: 'Pending', step: '-', weight: null, analysis: '-', message: 'not reconciled yet' };
  let status: RolloutStatus;
  try {
    status = parseStatus(text);
  } catch (err) {
    return { ...base, phase: 'Unknown', step: '-', weight: null, analysis: '-', message: `unreadable status: ${(err as Error).message}` };
  }
  // The stage's evidence once it has looked; before the first look (or outside a stage) the analysis run says more.
  const inStage = status.evidence && status.evidence.stepIndex === status.stepIndex && status.evidence.looks > 0 ? status.evidence : undefined;
  const analysis = inStage ? summarizeEvidence(inStage) : summarizeAnalysis(status.analysis ?? status.lastAnalysis);
  return { ...base, phase: status.phase, step: status.steps ? `${status.step}/${status.steps}` : '-', weight: status.weight, analysis, message: status.message, status };
}

/** An evidence stage's last look: "evidence (4 looks): hallucination-rate undecided n=312/5930" (the least decided metric). */
export function summarizeEvidence(evidence: StageEvidence): string {
  const order = { worse: 0, undecided: 1, 'not-worse': 2 } as const;
  const weakest = [...evidence.decisions].sort((a, b) => order[a.verdict] - order[b.verdict])[0];
  const looks = `evidence (${evidence.looks} look${evidence.looks === 1 ? '' : 's'})`;
  if (!weakest) return looks;
  const n = (x: number) => (Number.isFinite(x) ? formatNumber(Math.round(x)) : '?');
  return `${looks}: ${weakest.metric} ${weakest.verdict} n=${n(weakest.n.canary)}/${n(weakest.n.stable)}`;
}

/**
 * One line per compared metric of the evidence stage a rollout is in (or that stopped it):
 * "  chat-v2  hallucination-rate  undecided  estimate 0.004 [-0.021, 0.03], margin 0.03, n canary 212 / stable 1904".
 */
export function evidenceDetails(view: RolloutView): string[] {
  const evidence = view.status?.evidence;
  if (!evidence || evidence.stepIndex !== view.status?.stepIndex || evidence.looks === 0) return [];
  const f = (x: number) => (Number.isFinite(x) ? formatNumber(Number(x.toPrecision(3))) : '?');
  const n = (x: number) => (Number.isFinite(x) ? formatNumber(Math.round(x)) : '?');
  const width = Math.max(...evidence.decisions.map((d) => d.metric.length));
  return evidence.decisions.map(
    (d) => `  ${view.rollout}  ${d.metric.padEnd(width)}  ${d.verdict.padEnd(9)}  estimate ${f(d.estimate)} [${f(d.interval[0])}, ${f(d.interval[1])}], margin ${d.margin}, n canary ${n(d.n.canary)} / stable ${n(d.n.stable)}`,
  );
}

/** "Failed: error-rate=0.02", "Running", "Successful", or "-". */
export function summarizeAnalysis(run: AnalysisRunState | undefined): string {
  if (!run) return '-';
  const notable = run.metrics.find((m) => m.phase === 'Failed') ?? run.metrics.find((m) => m.phase === 'Error' || m.phase === 'Inconclusive');
  if (!notable) {
    // The smallest n across the metrics: how much evidence the weakest measurement had.
    const counts = run.metrics.map((m) => m.measurements.at(-1)?.n).filter((n): n is number => n !== undefined);
    return counts.length ? `${run.phase} (n>=${formatNumber(Math.min(...counts))})` : run.phase;
  }
  const measurement = notable.measurements.at(-1);
  const last = measurement?.value;
  const n = measurement?.n === undefined ? '' : ` (n=${formatNumber(measurement.n)})`;
  return `${run.phase}: ${notable.name}${last?.length ? `=${last.map(formatNumber).join(',')}` : ''}${n}`;
}

/** A text progress bar of the rollout's steps: "[######----]" (a promoted rollout is full). */
export function stepBar(status: RolloutStatus | undefined, width = 10): string {
  if (!status || status.steps <= 0) return `[${'-'.repeat(width)}]`;
  const done = status.phase === 'Promoted' ? status.steps : Math.min(status.stepIndex, status.steps);
  const filled = Math.round((done / status.steps) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/**
 * The weight, marked by what the proxies confirmed (controller --istiod-debug-url):
 * "25% live" once istiod saw it applied, "25% unconfirmed" when the check gave up, plain
 * "25%" when it was not checked (or the check was for another weight).
 */
export function weightCell(view: RolloutView): string {
  if (view.weight === null) return '-';
  const checked = view.status?.weightVerified;
  if (!checked || checked.weight !== view.weight) return `${view.weight}%`;
  return `${view.weight}% ${checked.verified ? 'live' : 'unconfirmed'}`;
}

export function renderTable(views: readonly RolloutView[], withNamespace: boolean): string {
  const header = [...(withNamespace ? ['NAMESPACE'] : []), 'ROLLOUT', 'PHASE', 'PROGRESS', 'STEP', 'WEIGHT', 'ANALYSIS', 'MESSAGE'];
  const rows = views.map((v) => [...(withNamespace ? [v.namespace] : []), v.rollout, v.phase, stepBar(v.status), v.step, weightCell(v), v.analysis, v.message]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  // The message is last and left unpadded: it may be long.
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const details = views.flatMap(evidenceDetails);
  return [line(header), ...rows.map(line), ...(details.length ? ['', 'EVIDENCE (compared with the stable: estimate [interval], n per arm)', ...details] : [])].join('\n');
}
