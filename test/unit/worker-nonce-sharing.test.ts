import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProbeVerifier, signProbe } from '../../extproc/probes/probe-token.js';
import type { SiblingNews } from '../../extproc/workers/messages.js';
import { KeptNonces } from '../../extproc/workers/kept-nonces.js';
import { shareNonces, type SiblingChannel } from '../../extproc/workers/nonce-sharing.js';

const SECRET = 'workers-share-this-secret';

/** Two workers' channels joined as the primary joins them: what one tells, the other hears. */
function joinedChannels(): [SiblingChannel, SiblingChannel, SiblingNews[]] {
  const listeners = [new Map<string, (p: unknown) => void>(), new Map<string, (p: unknown) => void>()];
  const told: SiblingNews[] = [];
  const channel = (self: number): SiblingChannel => ({
    tell: (news) => {
      told.push(news);
      listeners[1 - self]!.get(news.kind)?.(structuredClone(news.payload));
    },
    on: (kind, listener) => void listeners[self]!.set(kind, listener),
  });
  return [channel(0), channel(1), told];
}

describe('probe and shadow nonces shared between workers', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("refuses in one worker a token another worker accepted, once the batch went out", () => {
    const [a, b, told] = joinedChannels();
    const probeA = new ProbeVerifier(SECRET);
    const probeB = new ProbeVerifier(SECRET);
    const shadowA = new ProbeVerifier(SECRET, Date.now, 100_000, 'shadow');
    const shadowB = new ProbeVerifier(SECRET, Date.now, 100_000, 'shadow');
    shareNonces(a, { probe: probeA, shadow: shadowA });
    shareNonces(b, { probe: probeB, shadow: shadowB });

    const probes = Array.from({ length: 20 }, () => signProbe(SECRET, 'chat', 'v2', Date.now()));
    const shadow = signProbe(SECRET, 'chat', 'v2', Date.now(), 30, 'shadow');
    for (const header of probes) expect(probeA.verify('chat', header)).toEqual({ ok: true, version: 'v2' });
    expect(shadowA.verify('chat', shadow)).toEqual({ ok: true, version: 'v2' });
    expect(told).toEqual([]); // gathered, not yet sent: one message per batch, not per probe

    vi.advanceTimersByTime(10);
    expect(told.length).toBe(1);
    for (const header of probes) expect(probeB.verify('chat', header)).toEqual({ ok: false, why: 'replayed' });
    expect(shadowB.verify('chat', shadow)).toEqual({ ok: false, why: 'replayed' });
    // Each purpose keeps its own nonces: a shadow verifier did not learn the probes'.
    const fresh = signProbe(SECRET, 'chat', 'v2', Date.now(), 30, 'shadow');
    expect(shadowB.verify('chat', fresh)).toEqual({ ok: true, version: 'v2' });
  });

  it('ignores a malformed batch and does not remember expired nonces', () => {
    const verifier = new ProbeVerifier(SECRET);
    let hear: ((payload: unknown) => void) | undefined;
    shareNonces({ tell: () => undefined, on: (_kind, listener) => void (hear = listener) }, { probe: verifier });
    const header = signProbe(SECRET, 'chat', 'v2', Date.now());
    const nonce = header.split('.').at(-2)!;
    hear!({ probe: 'not a list', shadow: [[nonce, 1]] });
    hear!({ probe: [[nonce, Math.floor(Date.now() / 1000) - 5], [42, 'x']] });
    expect(verifier.verify('chat', header)).toEqual({ ok: true, version: 'v2' });
  });
});

describe("the primary's kept nonces, for a worker that starts later", () => {
  it('hands a new worker the unexpired nonces, and a replay of them is refused there', () => {
    let now = 1_700_000_000_000;
    const kept = new KeptNonces(() => now);
    const header = signProbe(SECRET, 'chat', 'v2', now);
    const [, nonce] = header.split('.').slice(-3);
    const expiry = Math.floor(now / 1000) + 30;
    kept.add({ probe: [[nonce, expiry], ['old', Math.floor(now / 1000) - 1], 'junk'], shadow: 'junk' });
    kept.add(null);
    expect(kept.batch()).toEqual({ probe: [[nonce, expiry]], shadow: [] });

    const restarted = new ProbeVerifier(SECRET, () => now);
    let hear: ((payload: unknown) => void) | undefined;
    shareNonces({ tell: () => undefined, on: (_kind, listener) => void (hear = listener) }, { probe: restarted });
    hear!(kept.batch());
    expect(restarted.verify('chat', header)).toEqual({ ok: false, why: 'replayed' });

    now += 31_000;
    expect(kept.batch()).toEqual({ probe: [], shadow: [] });
  });
});
