/**
 * The policies a rollouts file can use: its policy files (relative to it) plus the built-in
 * `default`. A policy file that does not load makes every rollout naming one of its policies
 * Invalid with the loader's message, instead of stopping the controller. Given the stack's
 * evaluators, a policy reading a metric none of them produces for the rollout's service is
 * also a problem (the rollout is Invalid, named at start, instead of paused for ever).
 */
import { dirname, resolve } from 'node:path';
import { loadPolicyFiles } from '../policy/load.js';
import type { LocalPolicyLookup } from './local-reconciler.js';
import type { RolloutsFile } from './rollouts-file.js';
import type { Policy } from '../policy/policy.js';
import { uncoveredMetrics, type EvaluatorInventory } from '../policy/evaluator-coverage.js';

export function localPolicyLookup(file: RolloutsFile, rolloutsFile: string, inventory?: EvaluatorInventory): LocalPolicyLookup {
  const paths = file.policies.map((p) => resolve(dirname(rolloutsFile), p));
  let policies: Map<string, Policy>;
  try {
    policies = loadPolicyFiles(paths).policies;
  } catch (err) {
    const problem = `policies could not be loaded: ${(err as Error).message}`;
    return () => ({ problem });
  }
  return (name, service) => {
    const policy = policies.get(name);
    if (!policy) return { problem: `policy "${name}" not found (known: ${[...policies.keys()].join(', ')})` };
    const uncovered = inventory ? uncoveredMetrics(policy, service, inventory) : [];
    return uncovered.length ? { problem: uncovered.map((u) => u.message).join('; ') } : { policy };
  };
}
