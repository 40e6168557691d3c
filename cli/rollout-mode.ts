/**
 * Which mode a CLI command talks to. Local mode (status files and action files in a state
 * dir) when --state-dir is given, or when ./.fledge/rollouts exists and nothing asks for a
 * cluster; --kubeconfig, -n/--namespace or -A/--all-namespaces force cluster mode.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option } from 'commander';
import { ROLLOUTS_DIR } from '../controller/local/state-store.js';

export const DEFAULT_STATE_DIR = '.fledge';

export const MODE_HELP =
  'Mode: local (the state dir of `fledge up` / `fledge controller --local`) when --state-dir is given or ./.fledge/rollouts exists; ' +
  'cluster otherwise. --kubeconfig, -n or -A force cluster mode.';

export interface ModeOptions {
  stateDir?: string;
  kubeconfig?: string;
  namespace?: string;
  allNamespaces?: boolean;
}

export function stateDirOption(): Option {
  return new Option('--state-dir <dir>', 'local mode: the state dir (default .fledge when ./.fledge/rollouts exists)');
}

/** The local state dir to use, or undefined for cluster mode. */
export function localStateDir(opts: ModeOptions, cwd = process.cwd()): string | undefined {
  const clusterAsked = opts.kubeconfig !== undefined || opts.namespace !== undefined || opts.allNamespaces === true;
  if (opts.stateDir !== undefined) {
    if (clusterAsked) throw new Error('--state-dir (local mode) cannot be combined with --kubeconfig, -n or -A (cluster mode)');
    return resolve(cwd, opts.stateDir);
  }
  if (clusterAsked) return undefined;
  const fallback = resolve(cwd, DEFAULT_STATE_DIR);
  return existsSync(join(fallback, ROLLOUTS_DIR)) ? fallback : undefined;
}
