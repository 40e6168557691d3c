import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger } from '../common/logger.js';
import { exitOnError, stopOnSignals } from './exit.js';

interface ModelCliOptions {
  model: string;
  version: string;
  host: string;
  port: number;
  systemPrompt: string;
  temperature: number;
  threads: number;
  concurrency: number;
  queue: number;
  contextSize: number;
}

export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant. Answer in one short, factual sentence.';

const HELP = `
Serves a real GGUF model (CPU, node-llama-cpp's prebuilt binary) as an OpenAI-compatible
server: POST /v1/chat/completions (JSON and SSE, usage), GET /v1/models, x-model-version on
every answer, GET /healthz (process up), GET /readyz (model loaded: 200, else 503).
Chat requests answer 503 until the model is loaded and 429 when --concurrency answers are
in progress and --queue more are waiting. max_tokens defaults to 64.

Two versions of one service are two configurations of the same model, e.g.:
  fledge model --model smollm2 --version v1 --port 8001
  fledge model --model smollm2 --version v2 --port 8002 --temperature 1.6
  fledge model --model smollm2 --version v2 --port 8002 --system-prompt 'Answer with a random guess.'

--model smollm2 is SmolLM2-135M-Instruct (Q4_1), installed by \`make model-deps\`.
`;

const number = (min: number, max: number, integer: boolean) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) throw new InvalidArgumentError(`expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`);
  return n;
};

/** `fledge model`: a real model behind an OpenAI-compatible API, in the foreground. */
export function modelCommand(): Command {
  return new Command('model')
    .description('serve a real GGUF model (e.g. SmolLM2) as an OpenAI-compatible server')
    .addOption(new Option('--model <gguf|name>', 'GGUF file, or smollm2').makeOptionMandatory())
    .addOption(new Option('--version <version>', 'version this configuration plays (x-model-version, model name)').default('v1'))
    .addOption(new Option('--host <host>', 'address to bind').default('127.0.0.1'))
    .addOption(new Option('--port <port>', 'port (0 picks a free one)').default(8001).argParser(number(0, 65535, true)))
    .addOption(new Option('--system-prompt <text>', 'system prompt for requests without one').default(DEFAULT_SYSTEM_PROMPT))
    .addOption(new Option('--temperature <t>', 'temperature for requests without one').default(0).argParser(number(0, 2, false)))
    .addOption(new Option('--threads <n>', 'CPU threads per evaluation').default(1).argParser(number(1, 256, true)))
    .addOption(new Option('--concurrency <n>', 'answers generated at once').default(2).argParser(number(1, 64, true)))
    .addOption(new Option('--queue <n>', 'requests waiting beyond --concurrency before 429').default(8).argParser(number(0, 10_000, true)))
    .addOption(new Option('--context-size <tokens>', 'tokens per answer slot (prompt + answer)').default(1024).argParser(number(128, 32_768, true)))
    .addHelpText('after', HELP)
    .action(async (opts: ModelCliOptions) => {
      const logger = createLogger('model');
      const { resolveModelPath, modelName } = await import('../model/model-files.js');
      const { startModelServer } = await import('../model/server.js');
      let modelPath: string;
      try {
        modelPath = resolveModelPath(opts.model);
      } catch (err) {
        return exitOnError(err);
      }
      const server = await startModelServer({
        host: opts.host,
        port: opts.port,
        version: opts.version,
        modelName: modelName(opts.model),
        systemPrompt: opts.systemPrompt,
        temperature: opts.temperature,
        engine: { modelPath, threads: opts.threads, concurrency: opts.concurrency, queueLimit: opts.queue, contextSize: opts.contextSize },
        logger,
      }).catch(exitOnError);
      stopOnSignals(() => server.close(), logger);
      // A model that cannot load is fatal: no point serving 503s forever.
      server.ready.catch((err: unknown) => exitOnError(err));
    });
}
