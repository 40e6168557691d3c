import { Command, InvalidArgumentError } from 'commander';
import { ConfigError } from '../common/config-error.js';
import { createLogger, type Logger } from '../common/logger.js';
import { loadStructuredFile } from '../common/structured-file.js';
import { knobsSchema, type KnobsInput } from './knobs.js';
import { startSim, type SimHandle } from './server.js';

export interface SimCommandHooks {
  /** Called once listening; closing this handle also removes the signal handlers. */
  onListening?: (sim: SimHandle) => void;
  logger?: Logger;
}

interface SimCliOptions {
  port: number;
  host: string;
  version: string;
  knobs?: string;
}

const HELP = `
Serves POST /v1/chat/completions (JSON and SSE streaming) and GET /v1/models like an
OpenAI-compatible model server, answering with filler text after a simulated latency.
Every response carries x-model-version: <version>.

Knobs (YAML or JSON file; every field optional, changeable at runtime):
  latency            {kind: fixed, ms} | {kind: uniform, minMs, maxMs}
                     | {kind: lognormal, medianMs, p95Ms}        default fixed 20 ms
  ttftMs             streams: time to first token               default latency / 4
  errorRate          share of requests that fail (0..1)         default 0
  errorStatus        HTTP status of a failure                   default 500
  tokens.prompt      reported prompt tokens                     default ~chars / 4
  tokens.completion  tokens in each answer                      default 32
  tokens.cachedPrompt  cached prompt tokens                     default 0
  tokens.cacheHitRate  share of answers reporting cachedPrompt  default 1
  chunks             content chunks per stream                  default 8
  hallucinationRate, qualityScore, qualityHeaders  x-quality-score / x-hallucination headers
  golden             [{prompt, answer, wrongAnswer}]: golden questions answered right,
                     or wrong for the hallucinationRate share
  confidence         token probability reported when a request asks for logprobs
  judgeScore         act as an LLM judge: every answer is {"score": judgeScore,
                     "hallucination": true at hallucinationRate, "reason": …}
  bodyFault          non-json | truncated-json | oversized | mislabelled (broken 200s)
  seed               makes every random draw reproducible

Admin (same port):
  GET|PUT|PATCH /admin/knobs   read, replace, deep-merge knobs (400 on invalid)
  GET /admin/stats             {version, requests, errors, byStatus, byUser}
  POST /admin/reset            clear stats and restart the seeded PRNG
  GET /healthz

Examples:
  fledge sim --port 8001 --version v1
  fledge sim --port 8002 --version v2 --knobs canary-faults.yaml
  curl -X PATCH localhost:8002/admin/knobs -d '{"errorRate": 0.2}'
`;

/** `fledge sim`: runs one simulated model server in the foreground until SIGINT/SIGTERM. */
export function simCommand(hooks: SimCommandHooks = {}): Command {
  return new Command('sim')
    .description('run a simulated OpenAI-compatible model server with runtime fault knobs')
    .option('--port <port>', 'port to listen on (0 picks a free one)', parsePort, 8001)
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--version <version>', 'model version this server plays (model name, x-model-version)', 'v1')
    .option('--knobs <file>', 'initial knobs, YAML or JSON')
    .addHelpText('after', HELP)
    .action(async function (this: Command, options: SimCliOptions) {
      const logger = hooks.logger ?? createLogger('sim');
      let knobs: KnobsInput = {};
      if (options.knobs) {
        try {
          knobs = loadStructuredFile(options.knobs, knobsSchema);
        } catch (err) {
          if (err instanceof ConfigError) this.error(`invalid knobs: ${err.message}`, { exitCode: 2, code: 'fledge.invalidKnobs' });
          throw err;
        }
      }
      const sim = await startSim({ host: options.host, port: options.port, version: options.version, knobs, logger });

      let closing: Promise<void> | undefined;
      const close = (): Promise<void> => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        closing ??= sim.close();
        return closing;
      };
      function onSignal(signal: NodeJS.Signals): void {
        logger.info({ signal }, 'closing on signal');
        close().catch((err: unknown) => {
          logger.error({ err }, 'close failed');
          process.exitCode = 1;
        });
      }
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      hooks.onListening?.({ ...sim, close });
    });
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return port;
}
