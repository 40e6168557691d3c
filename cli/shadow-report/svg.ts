/**
 * Inline SVG plots for the HTML report, drawn by hand (no library, no CDN): an ECDF of two
 * samples overlaid, and rates as bars with interval whiskers. Each returns an <svg> string.
 */

export const COLOURS = { candidate: '#d9480f', noise: '#1c7ed6' } as const;
const AXIS = '#495057';
const GRID = '#e9ecef';
const FONT = 'font-family="DejaVu Sans, Verdana, sans-serif"';

export interface Series {
  name: string;
  colour: string;
  values: readonly number[];
}

export interface EcdfOptions {
  xLabel: string;
  series: readonly Series[];
  format(v: number): string;
  /** Where "no difference" lies (ratio 1, delta 0): a dashed line. */
  neutral?: number;
  width?: number;
  height?: number;
}

/** Empirical CDFs as step lines: the share of pairs at or below each value, one line per series. */
export function ecdfPlot(o: EcdfOptions): string {
  const width = o.width ?? 440;
  const height = o.height ?? 250;
  const m = { left: 52, right: 16, top: 14, bottom: 54 };
  const all = o.series.flatMap((s) => s.values);
  if (o.neutral !== undefined) all.push(o.neutral);
  const [x0, x1] = paddedDomain(Math.min(...all), Math.max(...all));
  const sx = (v: number) => m.left + ((v - x0) / (x1 - x0)) * (width - m.left - m.right);
  const sy = (share: number) => height - m.bottom - share * (height - m.top - m.bottom);
  const parts: string[] = [];
  // Grid and axes.
  for (const share of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${sy(share)}" y2="${sy(share)}" stroke="${GRID}"/>`);
    parts.push(`<text x="${m.left - 6}" y="${sy(share) + 4}" text-anchor="end" font-size="11" fill="${AXIS}">${Math.round(share * 100)}%</text>`);
  }
  for (const t of niceTicks(x0, x1, 5)) {
    parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${sy(0)}" y2="${sy(0) + 5}" stroke="${AXIS}"/>`);
    parts.push(`<text x="${sx(t)}" y="${sy(0) + 18}" text-anchor="middle" font-size="11" fill="${AXIS}">${escapeXml(o.format(t))}</text>`);
  }
  parts.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${sy(0)}" y2="${sy(0)}" stroke="${AXIS}"/>`);
  parts.push(`<line x1="${m.left}" x2="${m.left}" y1="${sy(0)}" y2="${sy(1)}" stroke="${AXIS}"/>`);
  parts.push(`<text x="${(m.left + width - m.right) / 2}" y="${height - 8}" text-anchor="middle" font-size="12" fill="${AXIS}">${escapeXml(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(13 ${(m.top + sy(0)) / 2}) rotate(-90)" text-anchor="middle" font-size="12" fill="${AXIS}">share of pairs ≤ x</text>`);
  if (o.neutral !== undefined) parts.push(`<line x1="${sx(o.neutral)}" x2="${sx(o.neutral)}" y1="${sy(0)}" y2="${sy(1)}" stroke="#868e96" stroke-dasharray="4 4"/>`);
  // Steps; crisp edges keep the lines their exact colour (the screenshot test looks for it).
  o.series.forEach((s, row) => {
    if (s.values.length === 0) return;
    const sorted = [...s.values].sort((a, b) => a - b);
    // At most two steps per pixel column (x rounded to half a pixel): 5000 pairs draw the same line as 370 steps, in a smaller page.
    const steps: { x: string; y: string }[] = [];
    sorted.forEach((v, i) => {
      const step = { x: (Math.round(sx(v) * 2) / 2).toFixed(1), y: sy((i + 1) / sorted.length).toFixed(1) };
      if (steps.at(-1)?.x === step.x) steps[steps.length - 1] = step;
      else steps.push(step);
    });
    const d = `M${sx(x0).toFixed(1)},${sy(0).toFixed(1)}${steps.map((p) => ` H${p.x} V${p.y}`).join('')} H${sx(x1).toFixed(1)}`;
    parts.push(`<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="3" shape-rendering="crispEdges"/>`);
    // The median as a triangle under the axis, one row per series so equal medians both show.
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    const x = sx(median);
    parts.push(`<path d="M${x.toFixed(1)},${sy(0) + 23 + row * 8} l-4,6 h8 z" fill="${s.colour}"><title>${escapeXml(s.name)} median ${escapeXml(o.format(median))}</title></path>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height + 10}" width="${width}" height="${height + 10}" ${FONT} role="img">${parts.join('')}</svg>`;
}

export interface RateRow {
  label: string;
  bars: { name: string; colour: string; rate: number; lo: number; hi: number; text: string }[];
}

/** Horizontal bars (one per series and row) with their 95% interval as whiskers. */
export function rateBars(rows: readonly RateRow[], width = 880): string {
  const m = { left: 190, right: 150, top: 10, bottom: 40 };
  const barH = 14;
  const rowH = rows.length ? Math.max(...rows.map((r) => r.bars.length)) * (barH + 4) + 14 : 0;
  const height = m.top + rows.length * rowH + m.bottom;
  const maxHi = Math.max(0.05, ...rows.flatMap((r) => r.bars.map((b) => b.hi)));
  const ticks = niceTicks(0, maxHi, 4);
  const step = ticks[1]! - ticks[0]!;
  if (ticks.at(-1)! < maxHi) ticks.push(ticks.at(-1)! + step);
  const top = ticks.at(-1)!;
  const sx = (v: number) => m.left + (v / top) * (width - m.left - m.right);
  const parts: string[] = [];
  for (const t of ticks) {
    parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${m.top}" y2="${height - m.bottom}" stroke="${GRID}"/>`);
    parts.push(`<text x="${sx(t)}" y="${height - m.bottom + 16}" text-anchor="middle" font-size="11" fill="${AXIS}">${Math.round(t * 1000) / 10}%</text>`);
  }
  parts.push(`<text x="${(m.left + width - m.right) / 2}" y="${height - 6}" text-anchor="middle" font-size="12" fill="${AXIS}">share of pairs where it happened (bar) with its 95% Wilson interval (whisker)</text>`);
  rows.forEach((row, i) => {
    const y0 = m.top + i * rowH + 7;
    parts.push(`<text x="${m.left - 10}" y="${y0 + rowH / 2 - 3}" text-anchor="end" font-size="13" fill="#212529">${escapeXml(row.label)}</text>`);
    row.bars.forEach((b, j) => {
      const y = y0 + j * (barH + 4);
      const mid = y + barH / 2;
      parts.push(`<rect x="${m.left}" y="${y}" width="${Math.max(0, sx(b.rate) - m.left).toFixed(1)}" height="${barH}" fill="${b.colour}" shape-rendering="crispEdges"><title>${escapeXml(b.name)}: ${escapeXml(b.text)}</title></rect>`);
      parts.push(`<path d="M${sx(b.lo).toFixed(1)},${mid} H${sx(b.hi).toFixed(1)} M${sx(b.lo).toFixed(1)},${mid - 5} V${mid + 5} M${sx(b.hi).toFixed(1)},${mid - 5} V${mid + 5}" stroke="#212529" stroke-width="1.5" fill="none"/>`);
      parts.push(`<text x="${width - m.right + 8}" y="${mid + 4}" font-size="11" fill="${AXIS}">${escapeXml(b.text)}</text>`);
    });
  });
  parts.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${height - m.bottom}" stroke="${AXIS}"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ${FONT} role="img">${parts.join('')}</svg>`;
}

/** The data's range with 5% room on each side (and some width when every value is the same). */
function paddedDomain(lo: number, hi: number): [number, number] {
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return [lo - pad, hi + pad];
  }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

/** Round tick values (1, 2, 5 × 10^k apart) inside [lo, hi]. */
export function niceTicks(lo: number, hi: number, count: number): number[] {
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.round(t / step) * step);
  return ticks;
}

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
