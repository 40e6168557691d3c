/** `fledge demo --data-plane`: runs the data-plane demo and prints its summary. */
import { runDataPlaneDemo, type DemoPorts, type DemoSummary } from '../local/dataplane-demo.js';

export async function runDataPlaneDemoCommand(ports: DemoPorts, json: boolean): Promise<void> {
  const progress = json ? () => {} : (line: string) => process.stdout.write(`${line}\n`);
  const summary = await runDataPlaneDemo(ports, progress);
  process.stdout.write(json ? `${JSON.stringify(summary, null, 2)}\n` : renderSummary(summary));
}

function renderSummary(s: DemoSummary): string {
  const lines = ['', `Summary: service ${s.service}, stable ${s.stable}, candidate ${s.canary}`, ''];
  const header = ['phase', 'requests', 'failed', s.stable, s.canary, 'canary users %', 'moved back', 'reasons'];
  const rows = s.phases.map((p) => [
    p.phase,
    String(p.requests),
    String(p.failed),
    String(p.byVersion[s.stable] ?? 0),
    String(p.byVersion[s.canary] ?? 0),
    p.canaryUserShare === undefined ? '' : p.canaryUserShare.toFixed(1),
    p.usersMovedBack === undefined ? '' : String(p.usersMovedBack),
    Object.entries(p.byReason)
      .map(([k, v]) => `${k}:${v}`)
      .join(' '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  lines.push(fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt), '');
  const seed = s.phases.find((p) => p.phase === 'seed-flag');
  if (seed?.bySegment) {
    lines.push('Seed flag, by segment:');
    for (const [segment, counts] of Object.entries(seed.bySegment)) lines.push(`  ${segment.padEnd(9)} ${s.stable}=${counts[s.stable] ?? 0} ${s.canary}=${counts[s.canary] ?? 0}`);
    lines.push('');
  }
  lines.push(`Served in total: ${Object.entries(s.metrics).map(([k, v]) => `${k} ${v}`).join(', ')}`, '');
  return lines.join('\n');
}
