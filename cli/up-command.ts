import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseStructured } from '../common/structured-file.js';
import { PreflightError } from '../local/preflight.js';
import { exitOnError } from './exit.js';
import { loadStackConfig, stackConfigSchema, type StackConfig } from '../local/stack-config.js';

/** The stack `fledge up` runs without a file: one service, the seed's two versions. */
const DEFAULT_STACK = `
services:
  chat:
    stable: v1.2
    versions:
      v1.2: {knobs: {latency: {kind: lognormal, medianMs: 40, p95Ms: 120}}}
      v1.3: {knobs: {latency: {kind: lognormal, medianMs: 35, p95Ms: 100}}}
`;

export function upCommand(): Command {
  return new Command('up')
    .description('Run the local stack in the foreground: Redis, simulated models, extproc, Envoy, Prometheus and the controller in local mode, on the design ports. Ctrl-C stops everything.')
    .addOption(new Option('--stack <file>', 'stack file (services, model versions and knobs, flags, ports); default: one service "chat" with v1.2 and v1.3'))
    .addOption(new Option('--flags <file>', 'flagd flag file for extproc (overrides the stack file)'))
    .addOption(new Option('--state-dir <dir>', 'where generated configs, logs and data go (and, with --rollouts, rollout status and actions)').default('.fledge'))
    .addOption(new Option('--rollouts <file>', "the local controller's rollouts file (default: <state-dir>/rollouts.yaml, created empty; add rollouts to it while the stack runs)"))
    .addOption(new Option('--time-scale <factor>', 'divide rollout pauses and analysis intervals by this factor').default(1).argParser(positiveNumber))
    .action(async (opts: { stack?: string; flags?: string; stateDir: string; rollouts?: string; timeScale: number }) => {
      const config: StackConfig = opts.stack ? loadStackConfig(opts.stack) : parseStructured(DEFAULT_STACK, stackConfigSchema, 'built-in stack');
      const flagsFile = opts.flags ? resolve(opts.flags) : config.flags && opts.stack ? resolve(dirname(opts.stack), config.flags) : undefined;
      const { LocalStack } = await import('../local/stack.js');
      // The controller always runs; without --rollouts it watches an (initially empty) rollouts
      // file in the state dir, so adding a rollout there starts it.
      const rolloutsFile = opts.rollouts ? resolve(opts.rollouts) : defaultRolloutsFile(resolve(opts.stateDir));
      // A policy metric no evaluator can produce is an error now, not a pause for ever later.
      const { checkEvaluatorCoverage } = await import('../local/evaluator-inventory.js');
      try {
        checkEvaluatorCoverage(config, rolloutsFile);
      } catch (err) {
        exitOnError(err);
      }
      const stack = new LocalStack(config, { stateDir: resolve(opts.stateDir), flagsFile, controller: { rolloutsFile, timeScale: opts.timeScale } });
      let stopping = false;
      const shutdown = async (code: number) => {
        if (stopping) return;
        stopping = true;
        process.stdout.write('stopping the local stack...\n');
        await stack.stop();
        process.stdout.write('stopped\n');
        process.exit(code);
      };
      process.once('SIGINT', () => void shutdown(0));
      process.once('SIGTERM', () => void shutdown(0));
      try {
        await stack.start((c) => process.stdout.write(`up  ${c.name.padEnd(18)} ${c.summary}\n`));
      } catch (err) {
        if (err instanceof PreflightError) {
          process.stderr.write(`fledge up: ${err.message}\n`);
          process.exit(1);
        }
        throw err;
      }
      process.stdout.write(`fledge local stack is up (state in ${resolve(opts.stateDir)}); try:\n  curl -s -H 'host: chat' -H 'x-user-id: alice' http://127.0.0.1:${config.ports.envoy}/v1/chat/completions -d '{"messages":[{"role":"user","content":"hi"}]}'\n  fledge status --state-dir ${resolve(opts.stateDir)} --watch   # rollouts in ${rolloutsFile}\nCtrl-C stops everything.\n`);
      const crashed = await stack.firstExit();
      if (!stopping) {
        process.stderr.write(`fledge up: ${crashed.name} exited unexpectedly; stopping the stack (logs in ${resolve(opts.stateDir)})\n`);
        await shutdown(1);
      }
    });
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`must be a positive number, got "${value}"`);
  return n;
}

function defaultRolloutsFile(stateDir: string): string {
  const file = join(stateDir, 'rollouts.yaml');
  if (!existsSync(file)) {
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(file, '# Rollouts for the local controller (docs/local-mode.md); it picks up edits.\nrollouts: []\n');
  }
  return file;
}
