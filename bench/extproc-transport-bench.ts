/**
 * make bench-transport: where extproc's CPU per request goes. The same Envoy (the bench's
 * config) at the same fixed rate in front of three ext_proc servers in turn: fledge's extproc
 * (the seed's flag file on), a grpc-js server answering with constants, and a bare node:http2
 * server doing the gRPC framing itself (bench/transport/constant-ext-proc.ts). Each server's
 * CPU time is read from /proc over the measured run, and Envoy alone is measured right after
 * each, so every server gets the latency ratios: the floor the transport leaves.
 * Writes bench/results/extproc-transport.json.
 */
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { startProcess, waitForHttp, type ManagedProcess } from '../local/child-process.js';
import { startEnvoy } from '../local/envoy.js';
import { freePort, portInUse } from '../local/ports.js';
import { attack, targets } from './vegeta.js';

const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const FLAG_FILE = resolve(import.meta.dirname, '../../examples/flags.json');
const SERVERS = ['extproc', 'grpc-js', 'http2'] as const;
type ServerKind = (typeof SERVERS)[number];
/** BENCH_SERVERS=extproc,grpc-js: measure only these (bench/results is written only when all three ran). */
const RUN = (process.env.BENCH_SERVERS?.split(',') ?? [...SERVERS]).filter((k): k is ServerKind => (SERVERS as readonly string[]).includes(k));
/** BENCH_CPU_PROFILE_DIR: every server runs under `node --cpu-prof` there (a .cpuprofile each, for DevTools or speedscope). */
const PROFILE_DIR = process.env.BENCH_CPU_PROFILE_DIR;
const nodeFlags = (kind: ServerKind) => (PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', `${kind}.cpuprofile`] : []);

/** user + system CPU seconds of a process so far (/proc/<pid>/stat fields 14 and 15, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function waitForPort(proc: ManagedProcess, port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited before listening:\n${proc.logTail()}`);
    if (await portInUse(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${proc.name} is not listening on ${port} after ${timeoutMs} ms`);
}

async function startServer(kind: ServerKind, dir: string, grpcPort: number): Promise<ManagedProcess> {
  const cli = resolve(import.meta.dirname, '../cli/main.js');
  if (kind === 'extproc') {
    const routingFile = join(dir, 'routing.yaml');
    writeFileSync(routingFile, toYaml({ services: { bench: { stable: 'v1.2', canary: 'v1.3', canaryWeight: 50, rolloutHashes: { 'v1.2': 'h1', 'v1.3': 'h2' } } } }));
    const configFile = join(dir, 'extproc.yaml');
    writeFileSync(configFile, toYaml({ flags: { file: FLAG_FILE } }));
    const adminPort = await freePort();
    const proc = startProcess(kind, process.execPath, [...nodeFlags(kind), cli, 'extproc', '--config', configFile, '--routing-file', routingFile, '--port', String(grpcPort), '--admin-port', String(adminPort)], join(dir, `${kind}.log`), { ...process.env, FLEDGE_LOG_LEVEL: 'warn' });
    await waitForHttp(proc, `http://127.0.0.1:${adminPort}/readyz`);
    return proc;
  }
  const script = resolve(import.meta.dirname, 'transport/constant-ext-proc.js');
  const proc = startProcess(kind, process.execPath, [...nodeFlags(kind), script, kind, String(grpcPort)], join(dir, `${kind}.log`));
  await waitForPort(proc, grpcPort);
  return proc;
}

async function measure(kind: ServerKind, vegeta: string) {
  const dir = mkdtempSync(join(tmpdir(), `fledge-transport-${kind}-`));
  const [grpcPort, listenPort, baselinePort, failClosedPort, directPort, envoyAdmin] = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const server = await startServer(kind, dir, grpcPort!);
  const upstream = { host: '127.0.0.1', port: directPort! };
  const envoy = await startEnvoy(
    { listenPort: listenPort!, adminPort: envoyAdmin!, extprocPort: grpcPort, baselinePort, failClosedPort, directResponsePort: directPort, services: [{ name: 'bench', stable: 'v1.2', canary: 'v1.3', upstreams: { 'v1.2': upstream, 'v1.3': upstream } }] },
    dir,
  );
  try {
    const targetFile = join(dir, 'targets.txt');
    writeFileSync(targetFile, targets(listenPort!, 'bench', 1000));
    await attack(vegeta, targetFile, RATE, 3); // JIT and connections warm
    const pid = server.child.pid!;
    const before = cpuSeconds(pid);
    const started = Date.now();
    const run = await attack(vegeta, targetFile, RATE, SECONDS);
    const cpu = cpuSeconds(pid) - before;
    const seconds = (Date.now() - started) / 1000;
    // Envoy alone right after, same Envoy and rate, through its listener without ext_proc: the ratios' denominator.
    const baselineFile = join(dir, 'baseline-targets.txt');
    writeFileSync(baselineFile, targets(baselinePort!, 'bench', 1000));
    const alone = await attack(vegeta, baselineFile, RATE, SECONDS);
    const result = {
      cpu_us_per_request: Math.round((cpu / run.requests) * 1e6),
      cpu_share_of_a_core: Math.round((cpu / seconds) * 100) / 100,
      p50_ms: round(run.p50Ms),
      p99_ms: round(run.p99Ms),
      success: run.successRatio,
      requests: run.requests,
      envoy_alone: { p50_ms: round(alone.p50Ms), p99_ms: round(alone.p99Ms), success: alone.successRatio },
      p50_ratio: round(run.p50Ms / alone.p50Ms),
      p99_ratio: round(run.p99Ms / alone.p99Ms),
    };
    process.stdout.write(`${kind}: ${JSON.stringify(result)}\n`);
    return result;
  } finally {
    await envoy.process.stop();
    await server.stop();
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

async function main(): Promise<void> {
  const vegeta = process.env.FLEDGE_VEGETA;
  if (!vegeta) throw new Error("FLEDGE_VEGETA is not set: run 'make bench-transport'");
  const loadAtStart = loadavg()[0]!;
  const servers: Record<string, Awaited<ReturnType<typeof measure>>> = {};
  for (const kind of RUN) servers[kind] = await measure(kind, vegeta);
  if (RUN.length < SERVERS.length) return;
  const out = resolve(import.meta.dirname, '../../bench/results');
  mkdirSync(out, { recursive: true });
  const result = {
    command: 'make bench-transport',
    measured_at: new Date().toISOString(),
    load_average_1m_at_start: round(loadAtStart),
    cpus: cpus().length,
    rate_rps: RATE,
    duration_s: SECONDS,
    servers,
    setup: "one Envoy (--concurrency 1, the bench's ext_proc filter and cluster), upstream = Envoy direct_response, 1,000 sticky users, header-only path; extproc: fledge with the seed's flag file, v1.2/v1.3 at 50%; grpc-js: a grpc-js server answering both messages with constants; http2: node:http2 with the gRPC framing done by hand, same codec. CPU = the server process's user+system time from /proc over the measured run; envoy_alone: the same Envoy at the same rate through its listener without ext_proc, right after each server's run (p50_ratio, p99_ratio: the server's run over it, as extproc.json's targets)",
  };
  writeFileSync(join(out, 'extproc-transport.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
