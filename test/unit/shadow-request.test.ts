// Which user requests shadow mode copies, how a copy is recognised, and how the shadow share
// travels from the controller's VirtualService write to extproc's routing state.
import { describe, expect, it } from 'vitest';
import { applyShadow, ensureRouteToken, type VirtualService } from '../../controller/traffic/istio/virtual-service.js';
import { ProbeVerifier, signProbe } from '../../extproc/probes/probe-token.js';
import type { ServiceRouting } from '../../extproc/routing/state.js';
import { parseVirtualService } from '../../extproc/routing/virtualservice-parse.js';
import { shadowTicket } from '../../extproc/shadow/shadow-decision.js';
import { unpinnedReason } from '../../extproc/shadow/copy-sender.js';
import { shadowVersion } from '../../extproc/shadow/shadow-request.js';

const SECRET = 'a'.repeat(64);
const T0 = 1_800_000_000_000;
const state: ServiceRouting = { service: 'chat', stable: 'v1', canary: 'v2', canaryWeight: 0, killed: false, rolloutHashes: { v2: 'h2' }, shadowPercent: 20 };
const stable = { version: 'v1', reason: 'sticky' as const };

/** A draw sequence: the first value picks the request, the second the noise copy. */
const draws = (...values: number[]) => () => values.shift() ?? 0.99;

describe('shadow tickets', () => {
  it('copies the shadow share of the stable\'s user requests, some of them also to the stable again', () => {
    expect(shadowTicket(state, stable, 'r1', draws(0.1, 0.5), 0.25)).toEqual({ service: 'chat', stable: 'v1', candidate: 'v2', candidateHash: 'h2', requestId: 'r1', noise: false });
    expect(shadowTicket(state, stable, 'r1', draws(0.1, 0.2), 0.25)?.noise).toBe(true);
    expect(shadowTicket(state, stable, 'r1', draws(0.2), 0.25)).toBeUndefined(); // 20% share: 0.2 is past it
    let copied = 0;
    for (let i = 0; i < 10_000; i++) if (shadowTicket(state, stable, `r${i}`, Math.random, 0.25)) copied++;
    expect(copied).toBeGreaterThan(1800);
    expect(copied).toBeLessThan(2200);
  });

  it('copies nothing that is not an ordinary user request answered by the stable', () => {
    const always = () => 0;
    expect(shadowTicket(state, { version: 'v2', reason: 'sticky' }, 'r', always, 0)).toBeUndefined();
    for (const reason of ['probe', 'shadow', 'killed', 'kill-switch', 'error', 'guardrail', 'no-canary'] as const) {
      expect(shadowTicket(state, { version: 'v1', reason }, 'r', always, 0)).toBeUndefined();
    }
    expect(shadowTicket(state, stable, undefined, always, 0)).toBeUndefined(); // nothing to pair by
    expect(shadowTicket({ ...state, shadowPercent: 0 }, stable, 'r', always, 0)).toBeUndefined();
    expect(shadowTicket({ ...state, killed: true }, stable, 'r', always, 0)).toBeUndefined();
    expect(shadowTicket({ ...state, canary: undefined }, stable, 'r', always, 0)).toBeUndefined();
  });
});

describe('shadow copies', () => {
  const deps = () => ({ verifier: new ProbeVerifier(SECRET, () => T0, 1000, 'shadow'), capture: undefined, noiseShare: 0, random: Math.random });

  it('a signed copy is pinned to the candidate or the stable, once; a probe token is no shadow token', () => {
    const d = deps();
    const header = signProbe(SECRET, 'chat', 'v2', T0, 30, 'shadow');
    expect(shadowVersion(state, header, d)).toBe('v2');
    expect(shadowVersion(state, header, d)).toBeUndefined(); // replayed
    expect(shadowVersion(state, signProbe(SECRET, 'chat', 'v1', T0, 30, 'shadow'), d)).toBe('v1');
    expect(shadowVersion(state, signProbe(SECRET, 'chat', 'v2', T0), d)).toBeUndefined(); // a probe's token
    expect(new ProbeVerifier(SECRET, () => T0).verify('chat', signProbe(SECRET, 'chat', 'v2', T0, 30, 'shadow'))).toEqual({ ok: false, why: 'bad-mac' });
    expect(shadowVersion({ ...state, killed: true }, signProbe(SECRET, 'chat', 'v2', T0, 30, 'shadow'), d)).toBeUndefined();
    expect(shadowVersion(state, 'v2.1.2.3', d)).toBeUndefined();
    expect(shadowVersion(state, signProbe(SECRET, 'chat', 'v2', T0, 30, 'shadow'), { ...d, verifier: undefined })).toBeUndefined();
  });
});

describe('the shadow share in a VirtualService', () => {
  const vs = (): VirtualService => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'chat', namespace: 'ml', annotations: { 'fledge.dev/canary-subset': 'v2', 'fledge.dev/stable-subset': 'v1' } },
    spec: { hosts: ['chat'], http: [{ name: 'weighted', route: [{ destination: { host: 'chat', subset: 'v1' }, weight: 100 }, { destination: { host: 'chat', subset: 'v2' }, weight: 0 }] }] },
  });

  it('the controller writes it, extproc reads it; a malformed one keeps the VirtualService unusable with a reason', () => {
    const v = vs();
    ensureRouteToken(v, () => 'b'.repeat(32));
    applyShadow(v, { stable: 'v1', canary: 'v2' }, 20);
    expect(parseVirtualService(v)).toMatchObject({ ok: true, routing: { canary: 'v2', canaryWeight: 0, shadowPercent: 20 } });
    applyShadow(v, { stable: 'v1', canary: 'v2' }, 0);
    const off = parseVirtualService(v);
    expect(off.ok && off.routing.shadowPercent).toBeUndefined();
    v.metadata!.annotations!['fledge.dev/shadow-percent'] = 'lots';
    expect(parseVirtualService(v)).toEqual({ ok: false, reason: 'fledge.dev/shadow-percent "lots" is not a percent (0..100)' });
  });
});

describe('a copy\'s answer', () => {
  it('counts as the pinned version\'s only when extproc routed it there', () => {
    expect(unpinnedReason({ 'x-fledge-version': 'v2', 'x-fledge-reason': 'shadow' }, 'v2')).toBeUndefined();
    // The proxy's ext_proc call missed its timeout and failed open: the weighted route (the stable) answered, undecided.
    expect(unpinnedReason({ 'x-model-version': 'v1' }, 'v2')).toMatch(/no x-fledge-version on the answer/);
    // The pin was refused (e.g. a killed candidate): extproc routed the copy elsewhere.
    expect(unpinnedReason({ 'x-fledge-version': 'v1' }, 'v2')).toBe('answered by v1, not the pinned v2');
  });
});
