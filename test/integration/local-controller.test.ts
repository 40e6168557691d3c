// Local mode end to end on the real local stack (Envoy, extproc, Prometheus, Redis, sims):
// `fledge controller --local` runs three rollouts from a rollouts file; the CLI reads their
// status files and leaves actions; the controller is SIGKILLed mid-rollout and resumes.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freeStackPorts } from '../harness/stack-ports.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify as toYaml } from 'yaml';
import { LocalTrafficRouter } from '../../controller/local/local-router.js';
import { LocalStateStore } from '../../controller/local/state-store.js';
import { readTrafficState } from '../../controller/local/traffic-state.js';
import type { RolloutStatus } from '../../controller/kube/rollout-status.js';
import type { ManagedProcess } from '../../local/child-process.js';
import { modelServers, stackConfigSchema } from '../../local/stack-config.js';
import { LocalStack } from '../../local/stack.js';
import { TrafficGenerator } from '../../local/traffic.js';
import { CLI } from '../harness/dataplane.js';
import { readLocalStatus, startLocalController, waitForLocalStatus, waitForPrometheusUp, type LocalControllerOptions } from '../harness/local-stack.js';
import { PROBE_TEST_GOLDEN_FILE, PROBE_TEST_QA } from '../harness/golden-answers.js';

const run = promisify(execFile);
const seedDir = join(import.meta.dirname, '../fixtures/seed');
// The seed's pauses are 10m and 15m: 120x makes them 5 s and 7.5 s, long enough for
// Prometheus (scraping every 1 s) to hold several scrapes of the canary's series.
const TIME_SCALE = 120;
/** The background analysis's interval: 0.5 s at TIME_SCALE. */
const GUARD_INTERVAL = '1m';
const GUARD_INTERVAL_MS = 60_000 / TIME_SCALE;
const GOLDEN_FILE = PROBE_TEST_GOLDEN_FILE;
const QA = PROBE_TEST_QA;

describe('local-mode controller and CLI on the real local stack', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-local-controller-'));
  // Named .fledge so that `fledge status` run in `dir` finds it without --state-dir.
  const stateDir = join(dir, '.fledge');
  const rolloutsFile = join(dir, 'rollouts.yaml');
  const store = new LocalStateStore(stateDir);
  let stack: LocalStack;
  let controller: ManagedProcess | undefined;
  const traffic: Record<string, TrafficGenerator> = {};
  let ports: Record<string, number>;

  const startController = async () => {
    controller = await startLocalController({ stateDir, rolloutsFile, ports: ports as LocalControllerOptions['ports'], timeScale: TIME_SCALE, logFile: join(dir, 'controller.log') });
  };
  const writeRollouts = (more: object[]) =>
    writeFileSync(
      rolloutsFile,
      toYaml({
        policies: [join(seedDir, 'rollout.yaml'), join(seedDir, 'analysis-template.yaml'), 'manual.yaml', 'guarded.yaml'],
        rollouts: [
          { name: 'chat-v2', service: 'chat', candidate: 'v2', policy: 'inference-service' },
          { name: 'embed-v2', service: 'embed', candidate: 'v2', policy: 'manual' },
          { name: 'typo', service: 'chat', candidate: 'v9', policy: 'inference-service' },
          { name: 'no-policy', service: 'embed', candidate: 'v2', policy: 'nope' },
          ...more,
        ],
      }),
    );
  const status = (name: string): RolloutStatus => readLocalStatus(store, name);
  const waitFor = (name: string, what: string, ok: (s: RolloutStatus) => boolean, timeoutMs = 60_000): Promise<RolloutStatus> =>
    waitForLocalStatus(store, name, what, ok, { timeoutMs, ...(controller ? { controller } : {}) });
  const fledge = async (args: string[], cwd = dir) => (await run(process.execPath, [CLI, ...args], { cwd })).stdout;
  const envoyWeight = (service: string, version: string) => stack.routes.canaryWeightInForce(service, version);

  beforeAll(async () => {
    ports = await freeStackPorts(6);
    // The sims answer the golden questions of GOLDEN_FILE (wrongly at their hallucinationRate).
    const healthy = { knobs: { latency: { kind: 'fixed', ms: 5 }, hallucinationRate: 0, golden: QA } };
    const service = { stable: 'v1', versions: { v1: healthy, v2: healthy } };
    const config = stackConfigSchema.parse({
      ports,
      services: { chat: service, summarize: service, embed: service },
      // Every response sampled, so the quality series have the canary's data from the first
      // requests; quality and hallucination are extproc's golden checks of the answer text.
      extproc: { quality: { sampling: { defaultRate: 1 }, golden: { file: GOLDEN_FILE, inspect: 'sampled' } } },
      // This test is about the controller's mechanics: the user traffic asks the golden
      // questions itself, so golden probes stay off.
      probes: { enabled: false },
    });
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'manual.yaml'),
      toYaml({ apiVersion: 'fledge.dev/v1alpha1', kind: 'Policy', metadata: { name: 'manual' }, spec: { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 40 }, { pause: {} }, { setWeight: 100 }] } }),
    );
    // The seed's steps and step analyses, plus background analysis (Argo's canary.analysis) of
    // the hallucination rate every minute from the first pause.
    const seedSteps = (parse(readFileSync(join(seedDir, 'rollout.yaml'), 'utf8')) as { spec: { strategy: { canary: { steps: unknown[] } } } }).spec.strategy.canary.steps;
    writeFileSync(
      join(dir, 'guarded.yaml'),
      [
        toYaml({
          apiVersion: 'argoproj.io/v1alpha1',
          kind: 'Rollout',
          metadata: { name: 'guarded' },
          spec: { strategy: { canary: { steps: seedSteps, analysis: { templates: [{ templateName: 'hallucination-guard' }], args: [{ name: 'canary-hash', valueFrom: { podTemplateHashValue: 'Latest' } }], startingStep: 1 } } } },
        }),
        toYaml({
          apiVersion: 'argoproj.io/v1alpha1',
          kind: 'AnalysisTemplate',
          metadata: { name: 'hallucination-guard' },
          spec: {
            metrics: [
              {
                name: 'hallucination-rate',
                // As the default policy's guard: the canary has no series in its first moments.
                initialDelay: GUARD_INTERVAL,
                interval: GUARD_INTERVAL,
                inconclusiveLimit: 60,
                // The canary's first seconds at 5% may have a zero request rate (0/0 = NaN, a
                // failure by Argo's rules): too few requests is inconclusive instead, as in the default policy.
                minSamples: 20,
                samplesQuery: 'sum(increase(inference_requests_total{rollout_hash="{{args.canary-hash}}"}[10m]))',
                successCondition: 'result[0] < 0.05',
                provider: { prometheus: { query: '(sum(rate(inference_hallucination_total{rollout_hash="{{args.canary-hash}}"}[10m])) or vector(0)) / sum(rate(inference_requests_total{rollout_hash="{{args.canary-hash}}"}[10m]))' } },
              },
            ],
          },
        }),
      ].join('---\n'),
    );
    writeRollouts([]);
    stack = new LocalStack(config, { stateDir });
    await stack.start(() => undefined);
    await waitForPrometheusUp(ports.prometheus!);
    for (const [host, rps] of [['chat', 45], ['summarize', 45], ['embed', 10]] as const) {
      traffic[host] = new TrafficGenerator({
        port: ports.envoy!,
        host,
        rps,
        users: Array.from({ length: 400 }, (_, i) => ({ id: `user-${i}`, segment: i % 10 === 0 ? 'internal' : 'public' })),
        request: (i) => ({ kind: 'golden', body: { model: host, messages: [{ role: 'user', content: QA[i % QA.length]!.prompt }] } }),
      });
      traffic[host].start();
    }
  });

  afterAll(async () => {
    for (const t of Object.values(traffic)) await t.stop();
    await controller?.stop();
    await stack?.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });

  it('resumes at the same step after the controller is SIGKILLed mid-rollout, then promotes the healthy candidate', async () => {
    await startController();
    // Step 5 (index 4) is the 15m (7.5 s) pause at weight 25.
    const before = await waitFor('chat-v2', 'the pause at 25%', (s) => s.stepIndex === 4);
    await controller!.kill();
    expect(status('chat-v2')).toEqual(before);
    // While it is down the stack loses the weight (as a restarted `fledge up` would).
    await new LocalTrafficRouter({ trafficFile: stack.trafficFile, routingFile: stack.routingFile, envoyRoutes: stack.routes }, 'chat', 'v2').setWeight(0);
    await startController();
    expect(await envoyWeight('chat', 'v2')).toBe(25);
    // Ready = every rollout reconciled once: the pause goes on with the time already spent.
    const after = status('chat-v2');
    expect(after.stepIndex).toBe(4);
    expect(after.weight).toBe(25);
    expect(after.stepStartedAt).toBe(before.stepStartedAt);

    const done = await waitFor('chat-v2', 'a verdict', (s) => ['Promoted', 'RolledBack', 'Paused', 'Invalid'].includes(s.phase));
    expect(done.phase, done.message).toBe('Promoted');
    expect(done.lastAnalysis?.metrics.map((m) => m.phase)).toEqual(['Successful', 'Successful', 'Successful', 'Successful']);
    expect(done.target?.canaryHash).toBeTruthy();
    // The candidate is now the stable version in Envoy and extproc: every answer comes from v2.
    const since = Date.now() + 500;
    await waitForAnswers(traffic.chat!, since, 40);
    expect(new Set(traffic.chat!.answers.filter((a) => a.sentAt > since).map((a) => a.servedBy))).toEqual(new Set(['v2']));
    const events = store.readEvents('chat-v2');
    expect(events.filter((e) => e.reason === 'RolloutStarted')).toHaveLength(1);
    expect(traffic.chat!.failures()).toEqual([]);
  });

  it('background analysis rolls back a candidate that starts hallucinating at the start of the 15m stage, within the stage, with no failed request', async () => {
    // A new entry in the (watched) rollouts file starts a rollout.
    writeRollouts([{ service: 'summarize', candidate: 'v2', policy: 'guarded' }]);
    const atQuarter = await waitFor('summarize-v2', 'weight 25 after a passed analysis', (s) => s.stepIndex >= 3);
    expect(atQuarter.phase).toBe('Progressing');
    expect(atQuarter.stepIndex).toBe(4);
    const v2 = modelServers(stack.config).find((m) => m.service === 'summarize' && m.version === 'v2')!;
    const faultAt = Date.now();
    const res = await fetch(`http://127.0.0.1:${v2.port}/admin/knobs`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ hallucinationRate: 0.3 }) });
    expect(res.status).toBe(200);

    const done = await waitFor('summarize-v2', 'a verdict', (s) => ['Promoted', 'RolledBack', 'Paused', 'Invalid'].includes(s.phase));
    expect(done.phase, done.message).toBe('RolledBack');
    // Caught by the background run between step boundaries: still in the 15m pause (7.5 s here),
    // before the stage's own analysis.
    expect(done.stepIndex).toBe(4);
    expect(done.message).toContain('background analysis hallucination-guard: metric hallucination-rate failed');
    const measurements = done.background!.metrics[0]!.measurements;
    const failed = measurements.at(-1)!;
    expect(failed.phase).toBe('Failed');
    expect(failed.finishedAt).toBeGreaterThan(faultAt);
    // The breach was caught by the first measurement after the last healthy one, one interval later.
    // (That one passed, or was inconclusive for too few samples: not a failure either way.)
    const before = measurements.at(-2)!;
    expect(['Successful', 'Inconclusive']).toContain(before.phase);
    expect(failed.startedAt - before.finishedAt).toBeGreaterThanOrEqual(GUARD_INTERVAL_MS);
    expect(failed.startedAt - before.finishedAt).toBeLessThan(GUARD_INTERVAL_MS + 1000);
    expect(done.message).toContain('hallucination-rate');
    expect(done.weight).toBe(0);
    expect(await envoyWeight('summarize', 'v2')).toBe(0);
    const since = Date.now() + 500;
    await waitForAnswers(traffic.summarize!, since, 40);
    expect(new Set(traffic.summarize!.answers.filter((a) => a.sentAt > since).map((a) => a.servedBy))).toEqual(new Set(['v1']));
    expect(traffic.summarize!.failures()).toEqual([]);
    expect(store.readEvents('summarize-v2').map((e) => e.reason)).toContain('RolledBack');
  });

  it('marks a rollout of an unknown version Invalid and leaves its traffic alone', async () => {
    const typo = await waitFor('typo', 'Invalid', (s) => s.phase === 'Invalid');
    expect(typo.message).toContain('no model server runs version v9 of chat');
    expect(typo.weight).toBe(0);
    expect(readTrafficState(stack.trafficFile).services.chat!.canary).not.toBe('v9');
    expect(store.readEvents('typo').map((e) => e.reason)).toEqual(['Invalid']);
    const unknownPolicy = await waitFor('no-policy', 'Invalid', (s) => s.phase === 'Invalid');
    expect(unknownPolicy.message).toBe('policy "nope" not found (known: inference-service, manual, guarded, default, shadow-canary)');
  });

  it('CLI: status (table and JSON, state dir found from the working directory), promote and abort through action files', async () => {
    await waitFor('embed-v2', 'the indefinite pause', (s) => s.phase === 'Paused' && s.stepIndex === 1);
    const table = await fledge(['status']);
    expect(table.split('\n')[0]).toMatch(/^ROLLOUT\s+PHASE\s+PROGRESS\s+STEP\s+WEIGHT\s+ANALYSIS\s+MESSAGE$/);
    expect(table).toMatch(/^embed-v2\s+Paused\s+\[##--------\]\s+2\/5\s+10%/m);
    expect(table).toMatch(/^typo\s+Invalid\s/m);
    expect(table).toMatch(/^no-policy\s+Invalid\s/m);
    const json = JSON.parse(await fledge(['status', 'embed-v2', '--state-dir', stateDir, '--json'])) as { rollout: string; phase: string; weight: number; status: RolloutStatus }[];
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ rollout: 'embed-v2', phase: 'Paused', step: '2/5', weight: 10 });
    expect(json[0]!.status.target?.canarySubset).toBe('v2');
    expect(await envoyWeight('embed', 'v2')).toBe(10);

    // --watch prints one JSON document per line, again on every change.
    const watcher = spawn(process.execPath, [CLI, 'status', 'embed-v2', '--watch', '--json', '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let watched = '';
    watcher.stdout.on('data', (d: Buffer) => (watched += d.toString()));
    const weights = () => watched.split('\n').filter((l) => l.trim()).map((l) => (JSON.parse(l) as { weight: number }[])[0]!.weight);
    const watchedUntil = async (ok: () => boolean) => {
      const deadline = Date.now() + 10_000;
      while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    };
    try {
      await watchedUntil(() => watched.includes('\n'));
      expect(await fledge(['promote', 'embed-v2'])).toContain('promote requested for embed-v2');
      await waitFor('embed-v2', 'weight 40', (s) => s.stepIndex === 3 && s.weight === 40, 10_000);
      expect(await envoyWeight('embed', 'v2')).toBe(40);
      await watchedUntil(() => weights().includes(40));
      expect(weights()[0]).toBe(10);
      expect(weights()).toContain(40);
    } finally {
      watcher.kill();
    }

    await fledge(['abort', 'embed-v2', '--state-dir', stateDir]);
    const aborted = await waitFor('embed-v2', 'RolledBack', (s) => s.phase === 'RolledBack', 10_000);
    expect(aborted.weight).toBe(0);
    expect(await envoyWeight('embed', 'v2')).toBe(0);
    expect(store.readEvents('embed-v2').map((e) => e.reason)).toEqual(expect.arrayContaining(['RolloutStarted', 'Promoted', 'Aborted']));
    // Consumed: nothing is left in the actions dir.
    expect(readdirNames(join(stateDir, 'actions'))).toEqual([]);

    await expect(fledge(['pause', 'no-such-rollout', '--state-dir', stateDir])).rejects.toMatchObject({ stderr: expect.stringContaining('rollout no-such-rollout not found') });
    expect(traffic.embed!.failures()).toEqual([]);
  });
});

async function waitForAnswers(traffic: TrafficGenerator, since: number, n: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (traffic.answers.filter((a) => a.sentAt > since).length < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} answers to requests sent after ${since}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function readdirNames(path: string): string[] {
  return readdirSync(path).filter((f) => !f.endsWith('.tmp'));
}
