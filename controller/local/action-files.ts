/**
 * Local mode's actions: `actions/<name>` holds promote | abort | pause | resume | retry.
 * The CLI writes it (atomically); the controller consumes and removes it. A file survives a
 * controller that is down, so no action is lost. A newer action written while one was
 * being acted on is left for the next reconcile.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { UserAction } from '../engine/rollout-machine.js';
import { parseAction } from '../kube/rollout-status.js';
import { writeAtomically } from './traffic-state.js';

export const ACTIONS_DIR = 'actions';

export interface PendingAction {
  /** The file's text as read; consumption removes the file only if it still says this. */
  raw: string;
  /** undefined when the text is not a known action. */
  action: UserAction | undefined;
}

export class ActionFiles {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, ACTIONS_DIR);
  }

  ensure(): void {
    mkdirSync(this.dir, { recursive: true });
  }

  request(name: string, action: UserAction): void {
    this.ensure();
    writeAtomically(join(this.dir, name), `${action}\n`);
  }

  read(name: string): PendingAction | undefined {
    try {
      const raw = readFileSync(join(this.dir, name), 'utf8');
      return { raw, action: parseAction(raw) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`reading action file ${join(this.dir, name)} failed: ${(err as Error).message}`);
    }
  }

  consume(name: string, pending: PendingAction): void {
    const now = this.read(name);
    if (now?.raw === pending.raw) rmSync(join(this.dir, name), { force: true });
  }

  /** Rollout names with a pending action file (temporary files excluded). */
  pending(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir).filter((f) => !f.endsWith('.tmp'));
  }
}
