import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { PreflightError } from '../local/preflight.js';
import { DEFAULT_RPS, DEFAULT_TIME_SCALE, DEMO_ROLLOUTS } from '../local/rollout-demo-config.js';
import { MODEL_DEMO_PROBE_RATE, MODEL_DEMO_ROLLOUTS, MODEL_DEMO_TIME_SCALE } from '../local/model-rollout-demo-plan.js';
import { stackPortsSchema, type StackPorts } from '../local/stack-config.js';
import { runDataPlaneDemoCommand } from './dataplane-demo-command.js';

interface DemoOptions {
  json?: boolean;
  dataPlane?: boolean;
  model?: string;
  probeRate?: number;
  envoyPort: number;
  envoyAdminPort: number;
  extprocPort: number;
  extprocAdminPort: number;
  controllerAdminPort: number;
  prometheusPort: number;
  redisPort: number;
  proberPort: number;
  modelPort: number;
  timeScale?: number;
  rps: number;
  stateDir?: string;
}

/** Which flag sets each stack port, for preflight messages. */
const PORT_FLAGS: Record<keyof StackPorts, string> = {
  envoy: '--envoy-port',
  envoyAdmin: '--envoy-admin-port',
  extproc: '--extproc-port',
  extprocAdmin: '--extproc-admin-port',
  controllerAdmin: '--controller-admin-port',
  prometheus: '--prometheus-port',
  redis: '--redis-port',
  prober: '--prober-port',
  models: '--model-port',
};

export function demoCommand(): Command {
  const design = stackPortsSchema.parse({});
  return new Command('demo')
    .description(
      `Run two model rollouts on the local stack (Redis, simulated models, extproc, Envoy, Prometheus, the local controller) under the built-in default policy, time compressed: ${DEMO_ROLLOUTS.map((r) => `${r.name} (${r.fault ? `the candidate starts hallucinating at ${r.fault.atWeight}%, ` : 'healthy, '}expected ${r.expected})`).join(' and ')}, with traffic from 2000 users in segments; then a summary. --data-plane runs the data-plane demo instead (flags, sticky weights, kill switch, extproc failure).`,
    )
    .addOption(new Option('--json', 'print the summary as JSON (no progress output)'))
    .addOption(new Option('--data-plane', 'run the data-plane demo (Envoy + extproc + two simulated models, no controller)'))
    .addOption(
      new Option('--model <name>', `run the rollouts on a real model instead (make model-deps): ${MODEL_DEMO_ROLLOUTS.map((r) => `${r.name} expected ${r.expected}`).join(', then ')}, judged by golden probes against the stable (examples/real-model/)`).choices(['smollm2']),
    )
    .addOption(new Option('--probe-rate <n>', `with --model: golden probes per second per version (default ${MODEL_DEMO_PROBE_RATE})`).argParser(positive))
    .addOption(new Option('--envoy-port <n>', 'Envoy listener port').default(design.envoy).argParser(port))
    .addOption(new Option('--envoy-admin-port <n>', 'Envoy admin port').default(design.envoyAdmin).argParser(port))
    .addOption(new Option('--extproc-port <n>', 'extproc gRPC port').default(design.extproc).argParser(port))
    .addOption(new Option('--extproc-admin-port <n>', 'extproc admin/metrics port').default(design.extprocAdmin).argParser(port))
    .addOption(new Option('--controller-admin-port <n>', 'controller admin port').default(design.controllerAdmin).argParser(port))
    .addOption(new Option('--prometheus-port <n>', 'Prometheus port').default(design.prometheus).argParser(port))
    .addOption(new Option('--redis-port <n>', 'Redis port').default(design.redis).argParser(port))
    .addOption(new Option('--prober-port <n>', 'golden prober admin/metrics port').default(design.prober).argParser(port))
    .addOption(new Option('--model-port <n>', 'first simulated model port (the others follow: 4 for the rollout demo, 2 with --data-plane)').default(design.models).argParser(port))
    .addOption(new Option('--time-scale <factor>', `divide the policy's pauses by this factor (default ${DEFAULT_TIME_SCALE}: the 10m pause lasts 20 s; with --model ${MODEL_DEMO_TIME_SCALE})`).argParser(positive))
    .addOption(new Option('--rps <n>', 'requests per second per service').default(DEFAULT_RPS).argParser(positive))
    .addOption(new Option('--state-dir <dir>', 'keep generated configs, logs and rollout status here (default: a temporary dir, removed after a successful run)'))
    .action(async (opts: DemoOptions) => {
      if (opts.dataPlane) {
        await runDataPlaneDemoCommand(
          { envoy: opts.envoyPort, envoyAdmin: opts.envoyAdminPort, extproc: opts.extprocPort, extprocAdmin: opts.extprocAdminPort, modelBase: opts.modelPort },
          opts.json === true,
        );
        return;
      }
      const ports: StackPorts = {
        envoy: opts.envoyPort,
        envoyAdmin: opts.envoyAdminPort,
        extproc: opts.extprocPort,
        extprocAdmin: opts.extprocAdminPort,
        controllerAdmin: opts.controllerAdminPort,
        prometheus: opts.prometheusPort,
        redis: opts.redisPort,
        prober: opts.proberPort,
        models: opts.modelPort,
      };
      const logger = pino({ name: 'fledge', level: process.env.FLEDGE_LOG_LEVEL ?? 'warn', base: { component: 'demo', pid: process.pid } }, pino.destination(2));
      const stateDir = opts.stateDir ? { stateDir: resolve(opts.stateDir) } : {};
      try {
        if (opts.model) {
          const { runModelDemoCommand } = await import('./model-demo-command.js');
          await runModelDemoCommand({ ports, portFlags: PORT_FLAGS, timeScale: opts.timeScale ?? MODEL_DEMO_TIME_SCALE, probeRate: opts.probeRate ?? MODEL_DEMO_PROBE_RATE, logger, ...stateDir }, opts.json === true);
          return;
        }
        const { runRolloutDemoCommand } = await import('./rollout-demo-command.js');
        await runRolloutDemoCommand({ ports, portFlags: PORT_FLAGS, timeScale: opts.timeScale ?? DEFAULT_TIME_SCALE, rps: opts.rps, logger, ...stateDir }, opts.json === true);
      } catch (err) {
        if (err instanceof PreflightError) {
          process.stderr.write(`fledge demo: ${err.message}\n`);
          process.exit(1);
        }
        throw err;
      }
    });
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`must be a port (1-65535), got "${value}"`);
  return n;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`must be a positive number, got "${value}"`);
  return n;
}
