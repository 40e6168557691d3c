/** The report for a terminal: the verdict first, then compact tables. */
import { featureValue, utc } from './format.js';
import type { Rate, ShadowReport } from './report.js';
import { PREFERENCE_ROWS } from './preferences.js';
import { pPhrase, percent } from './verdict.js';

export function renderText(report: ShadowReport): string {
  const out: string[] = [];
  const versions = report.versions.length ? ` (candidate ${report.versions.join(', ')})` : '';
  out.push(`shadow report: ${report.service} rollout ${report.rolloutHash}${versions}`);
  out.push(`pairs: ${report.n.candidate} candidate, ${report.n.noise} noise floor (stable vs stable), ${utc(report.from)} – ${utc(report.to)}${report.unreadable ? `; ${report.unreadable} unreadable entries skipped` : ''}`);
  if (report.otherRollouts.length) out.push(`other rollouts of ${report.service}: ${report.otherRollouts.join(', ')} (pick one with --rollout-hash)`);
  out.push('', 'verdict:', ...report.verdict.lines.map((l) => `  - ${l}`), '');

  const featureRows: string[][] = [['feature', 'kind', 'n', 'p10', 'p50', 'p90', 'p99', 'candidate vs noise']];
  for (const f of report.features) {
    const test = f.test ? `${pPhrase(f.test.p)} (Mann-Whitney)` : '-';
    for (const [kind, q] of [['candidate', f.candidate], ['noise', f.noise]] as const) {
      const cells = q ? [q.p10, q.p50, q.p90, q.p99].map((v) => featureValue(f, v)) : ['-', '-', '-', '-'];
      featureRows.push([kind === 'candidate' ? f.label : '', kind, String(q?.n ?? 0), ...cells, kind === 'candidate' ? test : '']);
    }
  }
  out.push(table(featureRows, [2, 3, 4, 5, 6]), '');

  const rate = (r: Rate | undefined) => (r ? `${r.count}/${r.n} ${percent(r.rate)} [${percent(r.ci95[0])}–${percent(r.ci95[1])}]` : 'n/a');
  out.push(table([['flip (95% Wilson CI)', 'candidate', 'noise'], ...report.flips.map((f) => [f.label, rate(f.candidate), rate(f.noise)])], []), '');

  const p = report.preferences;
  if (p) {
    const rows = PREFERENCE_ROWS.map(([label, key]) => [label, rate(p.candidate?.[key]), rate(p.noise?.[key])]);
    out.push(table([['LLM judge, both orders (95% Wilson CI)', 'candidate', 'noise'], ...rows], []));
    if (p.stableWinsExcess) out.push(`stable wins, candidate − noise: ${signedPoints(p.stableWinsExcess.estimate)} [${signedPoints(p.stableWinsExcess.ci95[0])} – ${signedPoints(p.stableWinsExcess.ci95[1])}]`);
    out.push('');
  }

  if (report.worst.length) {
    const rows = report.worst.map((w) => [
      w.reason,
      w.requestId,
      `${w.lengthRatio.toFixed(2)}×`,
      w.similarity.toFixed(2),
      `${w.latencyDeltaMs > 0 ? '+' : ''}${Math.round(w.latencyDeltaMs)} ms`,
      `${w.stableChars} → ${w.candidateChars}`,
      `${w.stableFinish ?? '-'} → ${w.candidateFinish ?? '-'}`,
    ]);
    out.push('worst candidate pairs:', table([['why', 'request id', 'length', 'similarity', 'latency Δ', 'chars', 'finish'], ...rows], [2, 3, 4]));
  }
  return `${out.join('\n')}\n`;
}

const signedPoints = (x: number) => `${x > 0 ? '+' : ''}${(x * 100).toFixed(0)} pts`;

/** Columns padded to their widest cell; the numeric columns right-aligned. */
function table(rows: string[][], rightAligned: number[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => r.map((cell, i) => (rightAligned.includes(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}
