/**
 * Local mode's state store: per rollout, `rollouts/<name>.json` holds the same status JSON
 * as the fledge.dev/status annotation (written atomically, so a crash leaves the old or the
 * new status, never half of one), and `rollouts/<name>.events.jsonl` is its Event log.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseStatus, serializeStatus, type RolloutStatus } from '../kube/rollout-status.js';
import { writeAtomically } from './traffic-state.js';

export interface LocalEventRecord {
  time: string;
  severity: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export type StoredStatus = { kind: 'none' } | { kind: 'ok'; status: RolloutStatus; text: string } | { kind: 'corrupt'; problem: string; text: string };

export const ROLLOUTS_DIR = 'rollouts';

export class LocalStateStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, ROLLOUTS_DIR);
  }

  ensure(): void {
    mkdirSync(this.dir, { recursive: true });
  }

  statusFile(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  eventsFile(name: string): string {
    return join(this.dir, `${name}.events.jsonl`);
  }

  read(name: string): StoredStatus {
    let text: string;
    try {
      text = readFileSync(this.statusFile(name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
      throw new Error(`reading ${this.statusFile(name)} failed: ${(err as Error).message}`);
    }
    try {
      return { kind: 'ok', status: parseStatus(text), text };
    } catch (err) {
      return { kind: 'corrupt', problem: `${this.statusFile(name)} is unreadable (${(err as Error).message})`, text };
    }
  }

  /** Writes the status unless it is exactly what is stored; returns the text written. */
  write(name: string, status: RolloutStatus, previousText?: string): string {
    const text = serializeStatus(status);
    if (text !== previousText) writeAtomically(this.statusFile(name), text);
    return text;
  }

  appendEvents(name: string, events: readonly Omit<LocalEventRecord, 'time'>[], now: number): void {
    if (!events.length) return;
    const time = new Date(now).toISOString();
    appendFileSync(this.eventsFile(name), events.map((e) => `${JSON.stringify({ time, ...e })}\n`).join(''));
  }

  readEvents(name: string): LocalEventRecord[] {
    if (!existsSync(this.eventsFile(name))) return [];
    return readFileSync(this.eventsFile(name), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as LocalEventRecord);
  }

  /** Names of the rollouts with a status file, sorted. */
  names(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length))
      .sort();
  }
}
