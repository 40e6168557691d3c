import { Command, Option } from 'commander';
import { DEFAULT_DEMO_PORTS, type DemoSummary } from '../local/dataplane-demo.js';

export function demoCommand(): Command {
  return new Command('demo')
    .description('Run the data-plane demo on this machine: Envoy + extproc + two simulated models, users in segments, flags, sticky canary weights, kill switch, extproc failure.')
    .addOption(new Option('--json', 'print the summary as JSON'))
    .addOption(new Option('--envoy-port <n>', 'Envoy listener port').default(DEFAULT_DEMO_PORTS.envoy).argParser(Number))
    .addOption(new Option('--envoy-admin-port <n>', 'Envoy admin port').default(DEFAULT_DEMO_PORTS.envoyAdmin).argParser(Number))
    .addOption(new Option('--extproc-port <n>', 'extproc gRPC port').default(DEFAULT_DEMO_PORTS.extproc).argParser(Number))
    .addOption(new Option('--extproc-admin-port <n>', 'extproc admin/metrics port').default(DEFAULT_DEMO_PORTS.extprocAdmin).argParser(Number))
    .addOption(new Option('--model-port <n>', 'first simulated model port (the second is +1)').default(DEFAULT_DEMO_PORTS.modelBase).argParser(Number))
    .action(async (opts: { json?: boolean; envoyPort: number; envoyAdminPort: number; extprocPort: number; extprocAdminPort: number; modelPort: number }) => {
      const progress = opts.json ? () => {} : (line: string) => process.stdout.write(`${line}\n`);
      const { runDataPlaneDemo } = await import('../local/dataplane-demo.js');
      const summary = await runDataPlaneDemo(
        { envoy: opts.envoyPort, envoyAdmin: opts.envoyAdminPort, extproc: opts.extprocPort, extprocAdmin: opts.extprocAdminPort, modelBase: opts.modelPort },
        progress,
      );
      process.stdout.write(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : renderSummary(summary));
    });
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
