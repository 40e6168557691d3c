import { ConfigError } from '../common/config-error.js';
import { loadStructuredFile } from '../common/structured-file.js';
import { localPolicyLookup } from '../controller/local/local-policies.js';
import { namedRollouts, rolloutsFileSchema } from '../controller/local/rollouts-file.js';
import { uncoveredMetrics, type EvaluatorInventory } from '../controller/policy/evaluator-coverage.js';
import { GoldenSet } from '../extproc/quality/evaluators/golden-set.js';
import { DEFAULT_GOLDEN_FILE } from './golden-files.js';
import type { StackConfig } from './stack-config.js';

/** What the local stack's evaluators can produce, from its stack file. */
export function stackInventory(config: StackConfig): EvaluatorInventory {
  const quality = (config.extproc?.quality ?? {}) as { enabled?: boolean; golden?: { file?: string }; judge?: { redisUrl?: string }; modelReported?: { services?: string[] } };
  const enabled = quality.enabled !== false;
  const goldenFile = config.probes.goldenFile ?? quality.golden?.file ?? DEFAULT_GOLDEN_FILE;
  const golden = enabled && (config.probes.enabled || quality.golden?.file !== undefined) ? GoldenSet.load(goldenFile) : new GoldenSet([]);
  const trusted = quality.modelReported?.services ?? [];
  return {
    goldenProbes: (service) => enabled && config.probes.enabled && golden.covers(service),
    goldenTraffic: (service) => enabled && quality.golden?.file !== undefined && golden.covers(service),
    judge: enabled && quality.judge?.redisUrl !== undefined,
    // The local stack always runs shadow capture (its Envoy, its Redis, a probe secret).
    pairwiseJudge: enabled && quality.judge?.redisUrl !== undefined,
    modelReported: (service) => enabled && (trusted.includes('*') || trusted.includes(service)),
  };
}

/**
 * The rollouts of a rollouts file whose policy reads a metric no evaluator of the stack
 * produces: a ConfigError naming each, so `fledge up` and `fledge validate` stop at start
 * instead of a rollout pausing for ever for lack of data.
 */
export function checkEvaluatorCoverage(config: StackConfig, rolloutsFile: string): void {
  const file = loadStructuredFile(rolloutsFile, rolloutsFileSchema);
  const lookup = localPolicyLookup(file, rolloutsFile);
  const inventory = stackInventory(config);
  const problems: { path: string; message: string }[] = [];
  namedRollouts(file, rolloutsFile).forEach((rollout, i) => {
    const found = lookup(rollout.policy, rollout.service);
    if (!('policy' in found)) return; // the controller reports policy problems itself
    for (const u of uncoveredMetrics(found.policy, rollout.service, inventory)) problems.push({ path: `rollouts[${i}] (${rollout.name})`, message: u.message });
  });
  if (problems.length) throw new ConfigError(rolloutsFile, problems);
}
