import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { pino } from 'pino';
import { startSim } from '../sim/server.js';
import { newRouteToken } from '../common/route-token.js';
import { startProcess, waitForHttp, type ManagedProcess } from './child-process.js';
import { fledgeCli, packageFile } from './package-paths.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { preflight, PreflightError } from './preflight.js';

/**
 * The data-plane demo: Envoy + extproc + two simulated models on the local-stack ports,
 * realistic users in segments, and a summary of who was routed where and why.
 */
export interface DemoPorts {
  envoy: number;
  envoyAdmin: number;
  extproc: number;
  extprocAdmin: number;
  modelBase: number;
}


const SERVICE = 'chat';
const STABLE = 'v1.2';
const CANARY = 'v1.3';

export interface PhaseSummary {
  phase: string;
  description: string;
  requests: number;
  failed: number;
  byVersion: Record<string, number>;
  byReason: Record<string, number>;
  bySegment?: Record<string, Record<string, number>>;
  canaryUserShare?: number;
  usersMovedBack?: number;
}

export interface DemoSummary {
  service: string;
  stable: string;
  canary: string;
  phases: PhaseSummary[];
  metrics: Record<string, number>;
}

type Progress = (line: string) => void;

export async function runDataPlaneDemo(ports: DemoPorts, progress: Progress): Promise<DemoSummary> {
  await assertPortsFree(ports);
  const dir = mkdtempSync(join(tmpdir(), 'fledge-demo-'));
  const routingFile = join(dir, 'routing.yaml');
  const flagsFile = join(dir, 'flags.json');
  const seedFlags = readFileSync(packageFile('examples/flags.json'), 'utf8');
  // The per-version routes' secret, shared by extproc's routing file and Envoy's routes only.
  const routeToken = newRouteToken();
  const writeRouting = (canaryWeight: number, killed = false) =>
    writeFileSync(routingFile, toYaml({ services: { [SERVICE]: { stable: STABLE, canary: CANARY, canaryWeight, killed, routeToken, routesReportServedBy: true, rolloutHashes: { [STABLE]: '6f9c7d', [CANARY]: '84b21a' } } } }));
  writeRouting(0);
  writeFileSync(flagsFile, seedFlags);

  const quiet = pino({ level: 'warn' });
  const stable = await startSim({ host: '127.0.0.1', port: ports.modelBase, version: STABLE, logger: quiet, knobs: { latency: { kind: 'lognormal', medianMs: 20, p95Ms: 60 } } });
  const canary = await startSim({ host: '127.0.0.1', port: ports.modelBase + 1, version: CANARY, logger: quiet, knobs: { latency: { kind: 'lognormal', medianMs: 18, p95Ms: 50 } } });
  progress(`simulated models up: ${STABLE} on :${ports.modelBase}, ${CANARY} on :${ports.modelBase + 1}`);
  let extproc: ManagedProcess | undefined;
  let envoy: RunningEnvoy | undefined;
  try {
    const cli = fledgeCli();
    extproc = startProcess('extproc', process.execPath, [cli, 'extproc', '--routing-file', routingFile, '--flags-file', flagsFile, '--port', String(ports.extproc), '--admin-port', String(ports.extprocAdmin)], join(dir, 'extproc.log'));
    await waitForHttp(extproc, `http://127.0.0.1:${ports.extprocAdmin}/readyz`);
    progress(`extproc up: gRPC :${ports.extproc}, admin http://127.0.0.1:${ports.extprocAdmin}/metrics`);
    envoy = await startEnvoy(
      {
        listenPort: ports.envoy,
        adminPort: ports.envoyAdmin,
        extprocPort: ports.extproc,
        services: [{ name: SERVICE, stable: STABLE, canary: CANARY, routeToken, upstreams: { [STABLE]: { host: '127.0.0.1', port: stable.port }, [CANARY]: { host: '127.0.0.1', port: canary.port } } }],
      },
      dir,
    );
    progress(`envoy up: listener :${ports.envoy}, admin :${ports.envoyAdmin}`);

    const send = (user: string | undefined, segment: string | undefined) => chatThroughEnvoy(ports.envoy, user, segment);
    const waitForExtproc = (check: (s: DebugState) => boolean) => waitForState(ports.extprocAdmin, check);
    const phases: PhaseSummary[] = [];

    // 1. The seed's flag: internal users first, beta split 50/50 by user, everyone else stable.
    const population = makeUsers();
    phases.push((await runPhase('seed-flag', "the seed's flag file: internal → new, beta 50/50 by user, others → old", population, send, progress)).summary);

    // 2. Flags for internal users only; everyone else by sticky canary weight.
    const internalOnly = JSON.parse(seedFlags) as { flags: Record<string, { targeting: unknown }> };
    internalOnly.flags['inference-model-version']!.targeting = { if: [{ in: [{ var: 'segment' }, ['internal']] }, CANARY, null] };
    writeFileSync(flagsFile, JSON.stringify(internalOnly));
    await waitForExtproc((s) => (s.flags?.generation ?? 0) >= 2);
    let previousCanaryUsers = new Set<string>();
    for (const weight of [10, 25, 50]) {
      writeRouting(weight);
      await waitForExtproc((s) => s.services[0]?.canaryWeight === weight);
      const phase = await runPhase(`weight-${weight}`, `internal by flag, everyone else sticky at canary weight ${weight}%`, population, send, progress);
      const canaryUsers = new Set(phase.canaryUsers);
      phase.summary.usersMovedBack = [...previousCanaryUsers].filter((u) => !canaryUsers.has(u)).length;
      previousCanaryUsers = canaryUsers;
      phases.push(phase.summary);
    }

    // 3. The kill switch beats flags and weights.
    writeRouting(50, true);
    await waitForExtproc((s) => s.services[0]?.killed === true);
    phases.push((await runPhase('kill-switch', 'routing state killed: everyone → stable, internal users too', population, send, progress)).summary);

    // 4. extproc gone: Envoy fails open to the weighted route (this demo's static Envoy keeps it at 0% canary).
    writeRouting(50);
    await extproc.kill();
    phases.push((await runPhase('extproc-down', 'extproc killed: Envoy fails open to the weighted route (0% canary in this demo), no request fails', population.slice(0, 200), send, progress)).summary);

    return { service: SERVICE, stable: STABLE, canary: CANARY, phases, metrics: { [`served by ${STABLE}`]: stable.stats().requests, [`served by ${CANARY}`]: canary.stats().requests } };
  } finally {
    await envoy?.process.stop();
    await extproc?.stop();
    await stable.close();
    await canary.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface DemoUser {
  id: string;
  segment: string | undefined;
}

function makeUsers(): DemoUser[] {
  const users: DemoUser[] = [];
  for (let i = 0; i < 40; i++) users.push({ id: `staff-${i}`, segment: 'internal' });
  for (let i = 0; i < 160; i++) users.push({ id: `beta-${i}`, segment: 'beta' });
  for (let i = 0; i < 800; i++) users.push({ id: `user-${i}`, segment: i % 3 === 0 ? 'free' : 'pro' });
  return users;
}

async function runPhase(
  phase: string,
  description: string,
  users: DemoUser[],
  send: (user: string | undefined, segment: string | undefined) => Promise<Answer>,
  progress: Progress,
): Promise<{ summary: PhaseSummary; canaryUsers: string[] }> {
  const summary: PhaseSummary = { phase, description, requests: 0, failed: 0, byVersion: {}, byReason: {}, bySegment: {} };
  const canaryUsers: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < users.length) {
      const user = users[next++]!;
      const answer = await send(user.id, user.segment);
      summary.requests++;
      if (answer.status !== 200) summary.failed++;
      const version = answer.servedBy ?? 'unknown';
      const reason = answer.reason ?? 'no extproc decision';
      summary.byVersion[version] = (summary.byVersion[version] ?? 0) + 1;
      summary.byReason[reason] = (summary.byReason[reason] ?? 0) + 1;
      const segment = (summary.bySegment![user.segment ?? 'none'] ??= {});
      segment[version] = (segment[version] ?? 0) + 1;
      if (version === CANARY && user.segment !== 'internal') canaryUsers.push(user.id);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const keyed = users.filter((u) => u.segment !== 'internal').length;
  summary.canaryUserShare = Math.round((1000 * canaryUsers.length) / keyed) / 10;
  progress(`${phase.padEnd(13)} ${describeCounts(summary.byVersion)}  reasons: ${describeCounts(summary.byReason)}${summary.failed ? `  FAILED ${summary.failed}` : ''}`);
  return { summary, canaryUsers };
}

function describeCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

interface Answer {
  status: number;
  servedBy: string | undefined;
  reason: string | undefined;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

function chatThroughEnvoy(port: number, user: string | undefined, segment: string | undefined): Promise<Answer> {
  const headers: Record<string, string> = { host: SERVICE, 'content-type': 'application/json' };
  if (user) headers['x-user-id'] = user;
  if (segment) headers['x-user-segment'] = segment;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', headers, agent }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, servedBy: res.headers['x-model-version'] as string | undefined, reason: res.headers['x-fledge-reason'] as string | undefined }),
      );
    });
    req.on('error', reject);
    req.end(JSON.stringify({ model: SERVICE, messages: [{ role: 'user', content: 'What is the capital of France?' }] }));
  });
}

interface DebugState {
  services: { canaryWeight: number; killed: boolean }[];
  flags: { generation: number } | null;
}

async function waitForState(adminPort: number, check: (s: DebugState) => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const state = (await (await fetch(`http://127.0.0.1:${adminPort}/debug/state`)).json()) as DebugState;
    if (check(state)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('extproc did not pick up the demo change within 15 s');
}

async function assertPortsFree(ports: DemoPorts): Promise<void> {
  const problems = await preflight(
    [
      { port: ports.envoy, what: 'Envoy listener', setting: '--envoy-port' },
      { port: ports.envoyAdmin, what: 'Envoy admin', setting: '--envoy-admin-port' },
      { port: ports.extproc, what: 'extproc gRPC', setting: '--extproc-port' },
      { port: ports.extprocAdmin, what: 'extproc admin', setting: '--extproc-admin-port' },
      { port: ports.modelBase, what: `model ${STABLE}`, setting: '--model-port' },
      { port: ports.modelBase + 1, what: `model ${CANARY}`, setting: '--model-port' },
    ],
    { envoy: true },
  );
  if (problems.length) throw new PreflightError(problems);
}
