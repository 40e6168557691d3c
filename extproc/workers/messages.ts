/**
 * What `fledge extproc --workers N` sends over node:cluster's IPC channel. The primary owns
 * the admin port and relays what one worker learns that the others must know too; the
 * workers own the ext_proc port (shared through the primary) and answer its questions.
 */

/** What one worker tells its siblings (through the primary). */
export type SiblingNews =
  /** A guardrail trip seen by this worker: the others take the canary off too. */
  | { kind: 'guardrail-trip'; payload: unknown }
  /** The canary of a trip was retired: the primary stops handing it to restarted workers. */
  | { kind: 'guardrail-cleared'; payload: unknown }
  /** Probe and shadow nonces this worker accepted: a replay to a sibling is refused too. */
  | { kind: 'nonces'; payload: unknown };

export type WorkerQuestion = 'ready' | 'state' | 'coverage' | 'metrics';

export type PrimaryMessage =
  | { type: 'fledge:ask'; id: number; what: WorkerQuestion }
  /** The answer to a starting worker's hello: what its siblings learnt before it came (trips, nonces). */
  | { type: 'fledge:welcome'; news: SiblingNews[] }
  | ({ type: 'fledge:news' } & SiblingNews);

export type WorkerMessage =
  | { type: 'fledge:hello' }
  | { type: 'fledge:listening'; address: string }
  | { type: 'fledge:failed'; message: string }
  | { type: 'fledge:answer'; id: number; body?: unknown; error?: string }
  | ({ type: 'fledge:news' } & SiblingNews);

/** The worker's number (1…N), given by the primary in the environment of each fork. */
export const WORKER_INDEX_ENV = 'FLEDGE_EXTPROC_WORKER';

export function isFledgeMessage(message: unknown): message is { type: string } {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('fledge:');
}
