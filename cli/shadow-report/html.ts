/**
 * The report as one self-contained HTML page: the verdict on top, the pair counts, each
 * continuous feature's two distributions overlaid (candidate vs noise floor), the flip rates
 * with their intervals, and the worst pairs. Inline CSS and SVG only: it opens offline.
 */
import type { ShadowPairRecord } from '../../extproc/shadow/pair-log.js';
import { CONTINUOUS_FEATURES } from './features.js';
import { featureValue, utc } from './format.js';
import { valuesOf, type FeatureSummary, type Rate, type ShadowReport } from './report.js';
import { COLOURS, ecdfPlot, escapeXml as esc, rateBars, type RateRow } from './svg.js';
import { PREFERENCE_ROWS } from './preferences.js';
import { ALPHA, pPhrase, percent } from './verdict.js';

const STYLE = `
body { margin: 0; background: #f1f3f5; color: #212529; font: 14px/1.45 "DejaVu Sans", Verdana, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; } h3 { font-size: 15px; margin: 0; }
.meta { color: #495057; } code { background: #e9ecef; padding: 1px 5px; border-radius: 4px; }
.verdict { margin-top: 18px; padding: 14px 20px; border-radius: 8px; border-left: 8px solid; background: #fff; }
.verdict.differs { border-color: #e8590c; } .verdict.same { border-color: #2f9e44; } .verdict.unknown { border-color: #868e96; }
.verdict .word { font-size: 13px; font-weight: bold; letter-spacing: .06em; text-transform: uppercase; }
.verdict.differs .word { color: #d9480f; } .verdict.same .word { color: #2b8a3e; } .verdict.unknown .word { color: #495057; }
.verdict ul { margin: 6px 0 0; padding-left: 20px; font-size: 16px; } .verdict li { margin: 4px 0; }
.counts { display: flex; gap: 14px; margin-top: 14px; flex-wrap: wrap; }
.count { background: #fff; border-radius: 8px; padding: 10px 18px; min-width: 150px; }
.count b { display: block; font-size: 26px; } .count span { color: #495057; }
.legend { display: flex; gap: 20px; color: #495057; margin-bottom: 8px; }
.swatch { display: inline-block; width: 22px; height: 4px; vertical-align: middle; margin-right: 6px; border-radius: 2px; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
.card { background: #fff; border-radius: 8px; padding: 14px 16px; }
p { margin: 8px 0; color: #495057; }
.card header { display: flex; justify-content: space-between; align-items: baseline; margin-bottom: 4px; }
.badge { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #e9ecef; color: #495057; }
.badge.significant { background: #ffe8cc; color: #d9480f; font-weight: bold; }
.card svg { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; text-align: right; border-bottom: 1px solid #e9ecef; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; } th { color: #495057; font-weight: normal; }
.worst td:nth-child(2) { text-align: left; font-family: "DejaVu Sans Mono", monospace; }
.empty { color: #868e96; padding: 40px 0; text-align: center; }
footer { margin-top: 28px; color: #868e96; font-size: 12px; }
`;

export function renderHtml(report: ShadowReport, records: readonly ShadowPairRecord[], generatedAt = Date.now()): string {
  const title = `Shadow report · ${report.service}`;
  const verdictWord = { differs: 'the candidate differs', same: 'no difference beyond noise', unknown: 'cannot tell' }[report.verdict.status];
  const versions = report.versions.length ? ` · candidate <b>${esc(report.versions.join(', '))}</b>` : '';
  const body = [
    `<h1>${esc(title)}</h1>`,
    `<div class="meta">rollout <code>${esc(report.rolloutHash)}</code>${versions} · ${esc(utc(report.from))} – ${esc(utc(report.to))}</div>`,
    `<section class="verdict ${report.verdict.status}"><div class="word">${esc(verdictWord)}</div><ul>${report.verdict.lines.map((l) => `<li>${esc(l)}</li>`).join('')}</ul></section>`,
    counts(report),
    `<h2>Distributions: candidate vs noise floor</h2>`,
    legend(report, '▲ median · dashed: no difference'),
    `<div class="grid">${report.features.map((f) => featureCard(f, records)).join('')}${report.features.length % 2 ? HOW_TO_READ : ''}</div>`,
    `<h2>Flips: what changed between the two answers of a pair</h2>`,
    `<div class="card">${legend(report)}${rateBars(report.flips.map(flipRow))}</div>`,
    ...(report.preferences ? [`<h2>LLM judge: which answer is better (both orders asked)</h2>`, `<div class="card">${legend(report)}${rateBars(preferenceRows(report.preferences))}</div>`] : []),
    `<h2>Worst candidate pairs</h2>`,
    worstTable(report),
    `<footer>fledge shadow-report, ${esc(utc(generatedAt))}. Candidate pairs: the stable's answer vs the candidate's answer to the mirrored copy; noise floor: the stable's answer vs a second answer of the stable to the same request. Test: Mann-Whitney U, two-sided, normal approximation with tie correction, flagged below p=${ALPHA}. Rates: 95% Wilson intervals; a flip is flagged when the 95% interval of its difference from the noise floor (Newcombe) lies above 0. Pairs with a failed answer count only in “failed gained”.</footer>`,
  ].join('\n');
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${STYLE}</style></head>\n<body><main>\n${body}\n</main></body></html>\n`;
}

function counts(report: ShadowReport): string {
  const cell = (n: number | string, what: string) => `<div class="count"><b>${esc(String(n))}</b><span>${esc(what)}</span></div>`;
  return `<div class="counts">${[
    cell(report.n.candidate, 'candidate pairs'),
    cell(report.n.noise, 'noise-floor pairs'),
    ...(report.unreadable ? [cell(report.unreadable, 'unreadable entries skipped')] : []),
    ...(report.otherRollouts.length ? [cell(report.otherRollouts.length, `other rollouts: ${report.otherRollouts.join(', ')}`)] : []),
  ].join('')}</div>`;
}

function legend(report: ShadowReport, note = ''): string {
  return `<div class="legend"><span><i class="swatch" style="background:${COLOURS.candidate}"></i>candidate vs stable (n=${report.n.candidate})</span><span><i class="swatch" style="background:${COLOURS.noise}"></i>noise floor: stable vs stable (n=${report.n.noise})</span>${note ? `<span>${esc(note)}</span>` : ''}</div>`;
}

/** Fills the grid's last cell: how to read the plots, for someone who has not met an ECDF. */
const HOW_TO_READ = `<div class="card"><header><h3>How to read these plots</h3></header><p>Each line climbs through the pairs from the smallest value to the largest: where it crosses 50% is the median (▲). If the candidate were no different from the stable, its line would lie on the noise floor's, the stable compared with itself. A line shifted right means larger values (longer answers, slower, more tokens); a line that rises sooner means smaller ones.</p><p>The badge is the Mann-Whitney U test of the two samples; it is highlighted below p=${ALPHA}. The dashed line marks no difference (ratio 1, delta 0, identical answers).</p></div>`;

function featureCard(f: FeatureSummary, records: readonly ShadowPairRecord[]): string {
  const feature = CONTINUOUS_FEATURES.find((c) => c.key === f.key)!;
  const candidate = valuesOf(records.filter((r) => r.kind === 'candidate'), feature.value);
  const noise = valuesOf(records.filter((r) => r.kind === 'noise'), feature.value);
  const badge = f.test ? `<span class="badge${f.test.p < ALPHA ? ' significant' : ''}">${esc(pPhrase(f.test.p))}</span>` : `<span class="badge">no test</span>`;
  const head = `<header><h3>${esc(f.label)}</h3>${badge}</header>`;
  if (candidate.length === 0 && noise.length === 0) return `<div class="card">${head}<div class="empty">no pair has this feature (e.g. no streamed answers for TTFT, no token counts)</div></div>`;
  const xLabel = { lengthRatio: 'candidate chars / stable chars', latencyDeltaMs: 'latency: other − stable (ms)', ttftDeltaMs: 'time to first token: other − stable (ms)', outputTokensDelta: 'output tokens: other − stable', similarity: 'similarity of the two answers (word pairs, 0–1)' }[f.key];
  const plot = ecdfPlot({
    xLabel,
    neutral: feature.neutral,
    format: (v) => featureValue(f, v).replace(/^\+/, ''),
    series: [
      { name: 'noise floor', colour: COLOURS.noise, values: noise },
      { name: 'candidate', colour: COLOURS.candidate, values: candidate },
    ],
  });
  const row = (name: string, q: FeatureSummary['candidate']) =>
    `<tr><td>${name}</td><td>${q?.n ?? 0}</td>${(q ? [q.p10, q.p50, q.p90, q.p99].map((v) => featureValue(f, v)) : ['–', '–', '–', '–']).map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`;
  const table = `<table><tr><th></th><th>n</th><th>p10</th><th>p50</th><th>p90</th><th>p99</th></tr>${row('candidate', f.candidate)}${row('noise', f.noise)}</table>`;
  return `<div class="card">${head}${plot}${table}</div>`;
}

function flipRow(f: ShadowReport['flips'][number]): RateRow {
  const bar = (name: string, colour: string, r: Rate | undefined) =>
    r ? { name, colour, rate: r.rate, lo: r.ci95[0], hi: r.ci95[1], text: `${r.count}/${r.n} = ${percent(r.rate)}` } : { name, colour, rate: 0, lo: 0, hi: 0, text: 'n/a' };
  return { label: f.label, bars: [bar('candidate', COLOURS.candidate, f.candidate), bar('noise floor', COLOURS.noise, f.noise)] };
}

function preferenceRows(p: NonNullable<ShadowReport['preferences']>): RateRow[] {
  const bar = (name: string, colour: string, r: Rate | undefined) =>
    r ? { name, colour, rate: r.rate, lo: r.ci95[0], hi: r.ci95[1], text: `${r.count}/${r.n} = ${percent(r.rate)}` } : { name, colour, rate: 0, lo: 0, hi: 0, text: 'n/a' };
  return PREFERENCE_ROWS.map(([label, key]) => ({ label: label.trim(), bars: [bar('candidate', COLOURS.candidate, p.candidate?.[key]), bar('noise floor', COLOURS.noise, p.noise?.[key])] }));
}

function worstTable(report: ShadowReport): string {
  if (report.worst.length === 0) return `<div class="card empty">no candidate pair stands out</div>`;
  const rows = report.worst
    .map(
      (w) =>
        `<tr><td>${esc(w.reason)}</td><td>${esc(w.requestId)}</td><td>${w.lengthRatio.toFixed(2)}×</td><td>${w.similarity.toFixed(2)}</td><td>${w.latencyDeltaMs > 0 ? '+' : ''}${Math.round(w.latencyDeltaMs)} ms</td><td>${w.stableChars} → ${w.candidateChars}</td><td>${esc(w.stableFinish ?? '–')} → ${esc(w.candidateFinish ?? '–')}</td><td>${esc(utc(w.at))}</td></tr>`,
    )
    .join('');
  return `<div class="card"><table class="worst"><tr><th>why</th><th style="text-align:left">request id</th><th>length ratio</th><th>similarity</th><th>latency Δ</th><th>chars stable → candidate</th><th>finish</th><th>at</th></tr>${rows}</table></div>`;
}
