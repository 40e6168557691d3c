import type { ProbeVerifier } from '../probes/probe-token.js';
import type { SiblingNews } from './messages.js';

/** The part of a WorkerLink nonce sharing needs. */
export interface SiblingChannel {
  tell(news: SiblingNews): void;
  on(kind: SiblingNews['kind'], listener: (payload: unknown) => void): void;
}

export type Purpose = 'probe' | 'shadow';
type NonceBatch = Partial<Record<Purpose, [nonce: string, expiry: number][]>>;

/** The well-formed entries of a batch as workers send it ({ probe?: [nonce, expiry][], shadow?: … }); anything else is skipped. */
export function* nonceEntries(batch: unknown): Generator<[Purpose, string, number]> {
  if (typeof batch !== 'object' || batch === null) return;
  for (const purpose of ['probe', 'shadow'] as const) {
    const entries = (batch as Record<string, unknown>)[purpose];
    if (!Array.isArray(entries)) continue;
    for (const entry of entries) if (Array.isArray(entry) && typeof entry[0] === 'string' && typeof entry[1] === 'number') yield [purpose, entry[0], entry[1]];
  }
}

/** How long accepted nonces gather before they go to the siblings in one message. */
const BATCH_MS = 5;

/**
 * Shares the nonces of accepted probe and shadow tokens between extproc's workers, so a
 * header replayed to a sibling is refused as it is by the worker that saw it first. Nonces
 * travel in batches (one IPC message per few milliseconds, not one per probe): a replay
 * that reaches a sibling within that window and the IPC hop is still accepted once.
 */
export function shareNonces(link: SiblingChannel, verifiers: Partial<Record<Purpose, ProbeVerifier>>): void {
  let batch: NonceBatch = {};
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    const payload = batch;
    batch = {};
    link.tell({ kind: 'nonces', payload });
  };
  for (const [purpose, verifier] of Object.entries(verifiers) as [Purpose, ProbeVerifier | undefined][]) {
    if (!verifier) continue;
    verifier.onAccepted = (nonce, expiry) => {
      (batch[purpose] ??= []).push([nonce, expiry]);
      timer ??= setTimeout(flush, BATCH_MS);
    };
  }
  link.on('nonces', (payload) => {
    for (const [purpose, nonce, expiry] of nonceEntries(payload)) verifiers[purpose]?.remember(nonce, expiry);
  });
}
