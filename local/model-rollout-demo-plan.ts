/** What the real-model demo runs (examples/real-model/) and how fast; light, for the CLI's help. */
import { packageFile } from './package-paths.js';

export const MODEL_STACK_FILE = packageFile('examples/real-model/stack.yaml');
export const MODEL_POLICY_FILE = packageFile('examples/real-model/policy.yaml');
export const MODEL_POLICY_NAME = 'real-model';
/**
 * The example policy's 5m pause lasts 150 s at 2×. The slowest version (temperature 2: its
 * answers ramble to the probes' 64 tokens) answered 0.1-0.18 probes/s on a 2-core machine
 * shared with two other test runs: 15-27 answers in 150 s, its minSamples being 15.
 */
export const MODEL_DEMO_TIME_SCALE = 2;
/** Probes per second per version: more than the model sustains, so it is never idle (extra probes are skipped, not queued). */
export const MODEL_DEMO_PROBE_RATE = 1;

export interface ModelRolloutPlan {
  name: string;
  service: string;
  stable: string;
  candidate: string;
  expected: 'promoted' | 'rolled-back';
}

/** At the same time, as examples/real-model/rollouts.yaml has them. */
export const MODEL_DEMO_ROLLOUTS: readonly ModelRolloutPlan[] = [
  { name: 'chat-v2', service: 'chat', stable: 'v1', candidate: 'v2', expected: 'promoted' },
  { name: 'assistant-v2', service: 'assistant', stable: 'v1', candidate: 'v2', expected: 'rolled-back' },
];

