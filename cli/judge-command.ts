import { Command, Option } from 'commander';
import { createLogger } from '../common/logger.js';
import { DEFAULT_RUBRIC } from '../extproc/quality/judge/rubric.js';
import { JUDGE_RESPONSE_FORMATS, type JudgeResponseFormat } from '../extproc/quality/judge/judge-client.js';
import { readFileSync } from 'node:fs';
import { exitOnError, stopOnSignals } from './exit.js';

interface JudgeCliOptions {
  redisUrl: string;
  stream: string;
  pairStream: string | false;
  pairRubricFile?: string;
  group: string;
  consumer?: string;
  scoresStream: string;
  endpoint: string;
  model: string;
  apiKeyEnv: string;
  rubricFile?: string;
  rate: number;
  concurrency: number;
  ttl: number;
  timeout: number;
  maxTokens: number;
  responseFormat: JudgeResponseFormat;
  window: number;
  host: string;
  adminPort: number;
}

const positive = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`expected a positive number, got ${v}`);
  return n;
};

export function judgeCommand(): Command {
  return new Command('judge')
    .description('Run the LLM-judge worker: score sampled answers from the Redis Stream with an OpenAI-compatible judge, and judge shadow pairs (stable vs candidate, both orders), rate-limited.')
    .addOption(new Option('--redis-url <url>', 'Redis holding the sample stream').default('redis://127.0.0.1:6379'))
    .addOption(new Option('--stream <key>', 'sample stream (extproc quality.judge.stream)').default('fledge:judge:samples'))
    .addOption(new Option('--pair-stream <key>', 'shadow pairs stream for the pairwise judge, both orders per pair (extproc quality.judge.pairStream)').default('fledge:judge:pairs'))
    .addOption(new Option('--no-pair-stream', 'do not judge shadow pairs'))
    .addOption(new Option('--pair-rubric-file <file>', 'system prompt for the pairwise judge (default: built-in pairwise rubric)'))
    .addOption(new Option('--group <name>', 'consumer group shared by all judge workers').default('fledge-judge'))
    .addOption(new Option('--consumer <name>', 'this worker in the group (default host-pid)'))
    .addOption(new Option('--scores-stream <key>', 'where scores are published').default('fledge:judge:scores'))
    .addOption(new Option('--endpoint <url>', 'OpenAI-compatible judge base URL (fledge model, or a fledge sim with judgeScore)').makeOptionMandatory())
    .addOption(new Option('--model <name>', 'judge model name').default('judge'))
    .addOption(new Option('--api-key-env <var>', 'environment variable holding the judge API key').default('FLEDGE_JUDGE_API_KEY'))
    .addOption(new Option('--rubric-file <file>', 'system prompt for the judge (default: built-in rubric)'))
    .addOption(new Option('--rate <n>', 'judge calls per second at most').default(5).argParser(positive))
    .addOption(new Option('--concurrency <n>', 'judge calls in flight at once').default(4).argParser(positive))
    .addOption(new Option('--ttl <seconds>', 'samples older than this expire unjudged').default(600).argParser(positive))
    .addOption(new Option('--timeout <ms>', 'per judge call').default(10_000).argParser(positive))
    .addOption(new Option('--response-format <format>', 'how the judge is asked for JSON').choices(JUDGE_RESPONSE_FORMATS).default('json_object'))
    .addOption(new Option('--max-tokens <n>', 'tokens the judge may answer with (a verdict is short)').default(128).argParser(positive))
    .addOption(new Option('--window <seconds>', 'window of the inference_quality_score gauge').default(300).argParser(positive))
    .addOption(new Option('--host <addr>', 'admin/metrics address').default('127.0.0.1'))
    .addOption(new Option('--admin-port <n>', 'admin/metrics port').default(9103).argParser(Number))
    .action(async (opts: JudgeCliOptions) => {
      const logger = createLogger('judge');
      const { JudgeWorker, defaultConsumer } = await import('../extproc/quality/judge/worker.js');
      const worker = new JudgeWorker(
        {
          redisUrl: opts.redisUrl,
          stream: opts.stream,
          group: opts.group,
          consumer: opts.consumer ?? defaultConsumer(),
          scoresStream: opts.scoresStream,
          endpoint: { url: opts.endpoint, model: opts.model, apiKey: process.env[opts.apiKeyEnv], rubric: opts.rubricFile ? readFileSync(opts.rubricFile, 'utf8') : DEFAULT_RUBRIC, timeoutMs: opts.timeout, maxTokens: Math.floor(opts.maxTokens), responseFormat: opts.responseFormat },
          ratePerSecond: opts.rate,
          concurrency: Math.floor(opts.concurrency),
          ttlSeconds: opts.ttl,
          scoreWindowSeconds: opts.window,
          adminHost: opts.host,
          adminPort: opts.adminPort,
          ...(opts.pairStream === false ? {} : { pairStream: opts.pairStream }),
          ...(opts.pairRubricFile ? { pairRubric: readFileSync(opts.pairRubricFile, 'utf8') } : {}),
        },
        logger,
      );
      await worker.start().catch(exitOnError);
      stopOnSignals(() => worker.stop(), logger);
    });
}
