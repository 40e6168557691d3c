/** The CLI's side of local mode: rollout views from the status files, actions as files. */
import { readFileSync } from 'node:fs';
import type { UserAction } from '../controller/engine/rollout-machine.js';
import { ActionFiles } from '../controller/local/action-files.js';
import { LocalStateStore } from '../controller/local/state-store.js';
import { viewOfStatus, type RolloutView } from './rollout-view.js';

export function localViews(stateDir: string, only?: string): RolloutView[] {
  const store = new LocalStateStore(stateDir);
  const names = store.names();
  if (only && !names.includes(only)) throw new Error(`rollout ${only} not found in ${store.dir} (known: ${names.join(', ') || 'none'})`);
  return names.filter((n) => !only || n === only).map((name) => viewOfStatus('', name, readStatusText(store.statusFile(name))));
}

function readStatusText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined; // removed between the listing and the read
  }
}

/** Leaves the action for the local controller; it acts on it when it runs (now or later). */
export function requestLocalAction(stateDir: string, name: string, action: UserAction): string {
  const store = new LocalStateStore(stateDir);
  if (!store.names().includes(name)) throw new Error(`rollout ${name} not found in ${store.dir} (known: ${store.names().join(', ') || 'none'})`);
  const actions = new ActionFiles(stateDir);
  actions.request(name, action);
  return actions.dir;
}
