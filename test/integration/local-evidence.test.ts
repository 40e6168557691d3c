// Stages that end on evidence in local mode, on the real local stack (Envoy, extproc,
// Prometheus, Redis, simulated models): `fledge controller --local` rolls out three
// candidates under one evidence policy (a timed pause followed by an analysis whose
// error-rate compares the canary with the stable). The counts are extproc's real
// inference_requests_total / inference_errors_total, scraped by Prometheus: the healthy
// candidate's stage ends on its evidence and it is promoted; the failing one is rolled back
// at a look; the one with too little traffic is extended, then paused for lack of evidence.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { LocalStateStore } from '../../controller/local/state-store.js';
import type { RolloutStatus } from '../../controller/kube/rollout-status.js';
import type { ManagedProcess } from '../../local/child-process.js';
import { stackConfigSchema } from '../../local/stack-config.js';
import { LocalStack } from '../../local/stack.js';
import { TrafficGenerator } from '../../local/traffic.js';
import { startLocalController, waitForLocalStatus, waitForPrometheusUp } from '../harness/local-stack.js';
import { freeStackPorts } from '../harness/stack-ports.js';

// 10m pause → 10 s planned, 30 s cap; a look every 0.5 s.
const TIME_SCALE = 60;
const H = '{{args.canary-hash}}';
const POLICY = {
  apiVersion: 'fledge.dev/v1alpha1',
  kind: 'Policy',
  metadata: { name: 'evidence-local' },
  spec: {
    steps: [{ setWeight: 50 }, { pause: { duration: '10m' } }, { analysis: { templates: [{ templateName: 'errors-vs-stable' }], args: [{ name: 'canary-hash', valueFrom: { podTemplateHashValue: 'Latest' } }] } }, { setWeight: 100 }],
    analysisTemplates: [
      {
        apiVersion: 'argoproj.io/v1alpha1',
        kind: 'AnalysisTemplate',
        metadata: { name: 'errors-vs-stable' },
        spec: {
          args: [{ name: 'canary-hash' }],
          metrics: [
            {
              name: 'error-rate',
              provider: { prometheus: { query: `(sum(rate(inference_errors_total{rollout_hash="${H}"}[10m])) or vector(0)) / sum(rate(inference_requests_total{rollout_hash="${H}"}[10m]))` } },
              successCondition: 'result[0] <= 0.5',
              // Five points: what a few hundred requests per arm can settle at this confidence.
              compare: { margin: 0.05, confidence: 0.95 },
            },
          ],
        },
      },
    ],
  },
};

describe('evidence stages in local mode (real Envoy, extproc, Prometheus, sims)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-local-evidence-'));
  const stateDir = join(dir, '.fledge');
  const store = new LocalStateStore(stateDir);
  let stack: LocalStack;
  let controller: ManagedProcess | undefined;
  const traffic: TrafficGenerator[] = [];

  const waitFor = (name: string, ok: (s: RolloutStatus) => boolean) => waitForLocalStatus(store, name, 'a verdict', ok, { timeoutMs: 90_000, ...(controller ? { controller } : {}) });

  beforeAll(async () => {
    const ports = await freeStackPorts(6);
    const healthy = { latency: { kind: 'fixed', ms: 3 }, errorRate: 0 };
    const config = stackConfigSchema.parse({
      ports,
      services: {
        good: { stable: 'v1', versions: { v1: { knobs: healthy }, v2: { knobs: healthy } } },
        bad: { stable: 'v1', versions: { v1: { knobs: healthy }, v2: { knobs: { ...healthy, errorRate: 0.4 } } } },
        thin: { stable: 'v1', versions: { v1: { knobs: healthy }, v2: { knobs: healthy } } },
      },
      probes: { enabled: false },
    });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'evidence-local.yaml'), toYaml(POLICY));
    stack = new LocalStack(config, { stateDir });
    await stack.start(() => undefined);
    await waitForPrometheusUp(ports.prometheus);
    for (const [host, rps] of [['good', 40], ['bad', 40], ['thin', 0.5]] as const) {
      const t = new TrafficGenerator({
        port: ports.envoy,
        host,
        rps,
        users: Array.from({ length: 200 }, (_, i) => ({ id: `user-${i}` })),
        request: (i) => ({ kind: 'chat', body: { model: host, messages: [{ role: 'user', content: `question ${i}` }] } }),
      });
      t.start();
      traffic.push(t);
    }
    writeFileSync(
      join(dir, 'rollouts.yaml'),
      toYaml({ policies: ['evidence-local.yaml'], rollouts: ['good', 'bad', 'thin'].map((service) => ({ name: `${service}-v2`, service, candidate: 'v2', policy: 'evidence-local' })) }),
    );
    controller = await startLocalController({ stateDir, rolloutsFile: join(dir, 'rollouts.yaml'), ports, timeScale: TIME_SCALE, logFile: join(dir, 'controller.log') });
  });

  afterAll(async () => {
    for (const t of traffic) await t.stop();
    await controller?.stop();
    await stack?.stop();
    if (!process.env.FLEDGE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });

  const settled = (s: RolloutStatus) => s.phase !== 'Progressing';

  it('a healthy candidate ends its stage on evidence and is promoted; the decision names n per arm', async () => {
    const s = await waitFor('good-v2', settled);
    expect(s.phase, s.message).toBe('Promoted');
    const decided = store.readEvents('good-v2').find((e) => e.reason === 'StageDecided');
    expect(decided?.message).toMatch(/every compared metric is not worse than stable \(error-rate: estimate .* n canary \d+ \/ stable \d+\)/);
    expect(s.lastAnalysis?.metrics[0]?.measurements.at(-1)?.message).toContain('compared with stable: not-worse');
  });

  it('a candidate failing 40% of requests is rolled back at a look, its traffic back on stable', async () => {
    const s = await waitFor('bad-v2', settled);
    expect(s.phase, s.message).toBe('RolledBack');
    expect(s.message).toMatch(/step 2\/4 \(pause 10m\): metric error-rate: .*n canary \d+ \/ stable \d+; all traffic returned to stable/);
    expect(await stack.routes.canaryWeightInForce('bad', 'v2')).toBe(0);
  });

  it('too little traffic: the stage is extended past its pause, then Paused for lack of evidence at 50%', async () => {
    const s = await waitFor('thin-v2', settled);
    expect(s.phase, s.message).toBe('Paused');
    expect(s.pause?.reason).toBe('not-enough-evidence');
    expect(s.weight).toBe(50);
    expect(s.message).toContain('not enough evidence after 30m');
    expect(store.readEvents('thin-v2').some((e) => e.reason === 'StageExtended')).toBe(true);
  });
});
