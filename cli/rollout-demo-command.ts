/** `fledge demo`: runs the rollout demo with progress output, prints the summary, exits 1 if a rollout ended otherwise than planned. */
import { DEMO_ROLLOUTS } from '../local/rollout-demo-config.js';
import { runRolloutDemo, type RolloutDemoOptions } from '../local/rollout-demo.js';
import { barProgress, demoJson, lineProgress, renderDemoSummary, type RolloutProgress } from './rollout-demo-view.js';
import { interruptSignal } from './interrupt.js';

export async function runRolloutDemoCommand(options: Omit<RolloutDemoOptions, 'signal'>, json: boolean): Promise<void> {
  const started = Date.now();
  const say = json ? () => {} : (line: string) => process.stdout.write(`${line}\n`);
  const interrupt = interruptSignal();
  let progress: RolloutProgress | undefined;
  try {
    say(`fledge demo: starting the local stack (time scale ${options.timeScale}: the default policy's 10m pause lasts ${Math.round(600 / options.timeScale)} s; ${options.rps} requests/s per service)`);
    const result = await runRolloutDemo(
      { ...options, signal: interrupt.signal },
      {
        componentUp: (c) => say(`up  ${c.name.padEnd(20)} ${c.summary}`),
        rolloutsStarted: (names) => {
          say(`traffic is flowing; rollouts ${names.join(' and ')} started under the shadow-canary policy (shadow first, then the canary stages)`);
          if (!json) progress = process.stdout.isTTY ? barProgress(names, process.stdout) : lineProgress(process.stdout);
        },
        status: (name, status) => progress?.update(name, status),
        fault: (name, knobs) => progress?.note(`${name}: the candidate now misbehaves (${JSON.stringify(knobs)})`),
      },
    );
    progress?.stop();
    const wallSeconds = (Date.now() - started) / 1000;
    process.stdout.write(json ? `${JSON.stringify(demoJson(result.rollouts), null, 2)}\n` : renderDemoSummary(result.rollouts, wallSeconds));
    const unexpected = result.rollouts.filter((r) => r.outcome !== DEMO_ROLLOUTS.find((p) => p.name === r.name)?.expected || r.failedRequests > 0);
    if (unexpected.length) {
      process.stderr.write(`fledge demo: not as planned: ${unexpected.map((r) => `${r.name} ${r.outcome} (${r.phase}: ${r.message}), ${r.failedRequests} failed requests`).join('; ')}\n`);
      process.exitCode = 1;
    }
  } finally {
    progress?.stop();
    interrupt.release();
  }
}
