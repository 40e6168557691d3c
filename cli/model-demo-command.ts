/** `fledge demo --model smollm2`: the real-model rollouts with progress lines, then the summary; exits 1 if a rollout ended otherwise than planned. */
import { MODEL_DEMO_ROLLOUTS } from '../local/model-rollout-demo-plan.js';
import { runModelRolloutDemo, type ModelDemoOptions } from '../local/model-rollout-demo.js';
import { demoJson, lineProgress, renderDemoSummary } from './rollout-demo-view.js';
import { interruptSignal } from './interrupt.js';

export async function runModelDemoCommand(options: Omit<ModelDemoOptions, 'signal'>, json: boolean): Promise<void> {
  const started = Date.now();
  const say = json ? () => {} : (line: string) => process.stdout.write(`${line}\n`);
  const interrupt = interruptSignal();
  // One line per change: the rollouts run one after the other, a bar per rollout adds little.
  const progress = json ? undefined : lineProgress(process.stdout);
  try {
    say(`fledge demo --model smollm2: starting the local stack on the real model (time scale ${options.timeScale}, golden probes at ${options.probeRate}/s per version)`);
    const result = await runModelRolloutDemo(
      { ...options, signal: interrupt.signal },
      {
        componentUp: (c) => say(`up  ${c.name.padEnd(20)} ${c.summary}`),
        rolloutStarted: (plan) => say(`rollout ${plan.name}: ${plan.service} ${plan.stable} -> ${plan.candidate} under policy real-model (examples/real-model/policy.yaml)`),
        status: (name, status) => progress?.update(name, status),
      },
    );
    const wallSeconds = (Date.now() - started) / 1000;
    if (json) {
      process.stdout.write(`${JSON.stringify({ versions: result.versions, ...demoJson(result.rollouts) }, null, 2)}\n`);
    } else {
      const versions = Object.entries(result.versions).map(([v, what]) => `  ${v}: ${what}`);
      process.stdout.write(`${renderDemoSummary(result.rollouts, wallSeconds)}Versions (every value above is golden probes' checks of these versions' answers; n = probe answers):\n${versions.join('\n')}\n`);
    }
    const unexpected = MODEL_DEMO_ROLLOUTS.filter((p) => result.rollouts.find((r) => r.name === p.name)?.outcome !== p.expected);
    if (unexpected.length) {
      const outcome = (name: string) => result.rollouts.find((r) => r.name === name);
      process.stderr.write(`fledge demo: not as planned: ${unexpected.map((p) => `${p.name} ${outcome(p.name)?.outcome ?? 'not run'} (expected ${p.expected}; ${outcome(p.name)?.message ?? ''})`).join('; ')}\n`);
      process.exitCode = 1;
    }
  } finally {
    interrupt.release();
  }
}
