import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { OpenFeature } from '@openfeature/server-sdk';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config-error.js';
import { newRouteToken } from '../../common/route-token.js';
import { applyHeaderRoutes, applyRoutingAnnotations, ensureRouteToken, retireCanaryAnnotation, type VirtualService } from '../../controller/traffic/istio/virtual-service.js';
import { FlagdFileProvider } from '../../extproc/flags/flagd-file-provider.js';
import { VersionFlags } from '../../extproc/flags/version-flags.js';
import { parseRoutingFile } from '../../extproc/routing/state.js';
import { parseVirtualService } from '../../extproc/routing/virtualservice-parse.js';
import { routeConfig } from '../../controller/traffic/envoy/routes.js';

const TOKEN = 'ab'.repeat(16);
const subsets = { stable: 'v1', canary: 'v2' };

function userVirtualService(): VirtualService {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'chat', namespace: 'models', annotations: { 'fledge.dev/canary-subset': 'v2' } },
    spec: {
      hosts: ['chat'],
      http: [
        { name: 'pinned-v2', match: [{ headers: { 'X-Fledge-Version': { exact: 'v2' } } }], route: [{ destination: { host: 'chat', subset: 'v2' } }] },
        { name: 'debug', match: [{ headers: { 'x-debug': { exact: '1' } } }], route: [{ destination: { host: 'chat', subset: 'v1' } }] },
        { name: 'weighted', route: [{ destination: { host: 'chat', subset: 'v1', port: { number: 8080 } }, weight: 80 }, { destination: { host: 'chat', subset: 'v2', port: { number: 8080 } }, weight: 20 }] },
      ],
    },
  };
}

describe('route token: the controller layout of the VirtualService', () => {
  it('writes a 128-bit token once and keeps it; replaces a malformed one', () => {
    const vs = userVirtualService();
    expect(ensureRouteToken(vs)).toBe(true);
    const token = vs.metadata!.annotations!['fledge.dev/route-token']!;
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect(ensureRouteToken(vs)).toBe(false);
    expect(vs.metadata!.annotations!['fledge.dev/route-token']).toBe(token);
    vs.metadata!.annotations!['fledge.dev/route-token'] = 'guessable';
    expect(ensureRouteToken(vs, () => TOKEN)).toBe(true);
    expect(vs.metadata!.annotations!['fledge.dev/route-token']).toBe(TOKEN);
    expect(newRouteToken()).not.toBe(newRouteToken());
  });

  it('puts token-matched fledge-<subset> routes first, replacing user routes on x-fledge-version, and keeps the others', () => {
    const vs = userVirtualService();
    ensureRouteToken(vs, () => TOKEN);
    expect(applyHeaderRoutes(vs, subsets, true)).toBe(true);
    expect(vs.spec.http!.map((h) => h.name)).toEqual(['fledge-v1', 'fledge-v2', 'debug', 'weighted']);
    expect(vs.spec.http![1]).toEqual({
      name: 'fledge-v2',
      match: [{ headers: { 'x-fledge-version': { exact: 'v2' }, 'x-fledge-route-token': { exact: TOKEN } } }],
      route: [{ destination: { host: 'chat', subset: 'v2', port: { number: 8080 } } }],
      headers: { request: { remove: ['x-fledge-route-token'] }, response: { set: { 'x-fledge-served-by': 'v2' } } },
    });
    expect(applyHeaderRoutes(vs, subsets, true)).toBe(false);
    // extproc reads the same VirtualService: the weighted route, the token, the canary, and that the routes name who served.
    expect(parseVirtualService(vs)).toMatchObject({ ok: true, routing: { stable: 'v1', canary: 'v2', canaryWeight: 20, routeToken: TOKEN, routesReportServedBy: true } });
  });

  it('extproc expects x-fledge-served-by only when every per-version route sets it to its own subset', () => {
    const vs = userVirtualService();
    ensureRouteToken(vs, () => TOKEN);
    applyHeaderRoutes(vs, subsets, true);
    const reports = (v: VirtualService) => {
      const parsed = parseVirtualService(v);
      return parsed.ok && parsed.routing.routesReportServedBy === true;
    };
    expect(reports(vs)).toBe(true);
    // Routes an older controller wrote (no response header): a missing header proves nothing.
    const older = structuredClone(vs);
    for (const r of older.spec.http!.filter((h) => h.name?.startsWith('fledge-'))) r.headers = { request: { remove: ['x-fledge-route-token'] } };
    expect(reports(older)).toBe(false);
    // A route naming another subset than its destination's is not trusted either.
    const crossed = structuredClone(vs);
    crossed.spec.http![1]!.headers = { response: { set: { 'x-fledge-served-by': 'v1' } } };
    expect(reports(crossed)).toBe(false);
    // No token: no per-version routes extproc can pick, nothing to expect.
    const unmanaged = userVirtualService();
    expect(reports(unmanaged)).toBe(false);
  });

  it('retires the candidate: no canary route, no canary annotation, so extproc sees no canary', () => {
    const vs = userVirtualService();
    ensureRouteToken(vs, () => TOKEN);
    applyRoutingAnnotations(vs, subsets, { canaryHash: 'c', stableHash: 's' });
    applyHeaderRoutes(vs, subsets, true);
    expect(retireCanaryAnnotation(vs, subsets)).toBe(true);
    expect(applyHeaderRoutes(vs, subsets, false)).toBe(true);
    expect(vs.spec.http!.map((h) => h.name)).toEqual(['fledge-v1', 'debug', 'weighted']);
    expect(vs.metadata!.annotations!['fledge.dev/canary-subset']).toBeUndefined();
    expect(vs.metadata!.annotations!['fledge.dev/stable-subset']).toBe('v1');
    expect(retireCanaryAnnotation(vs, subsets)).toBe(false);
    const parsed = parseVirtualService(vs);
    expect(parsed).toMatchObject({ ok: true, routing: { stable: 'v1', canaryWeight: 0, routeToken: TOKEN } });
    expect(parsed.ok && parsed.routing.canary).toBeUndefined();
  });

  it('extproc rejects a VirtualService whose token is not 128 bits of hex (its last good state stays)', () => {
    const vs = userVirtualService();
    vs.metadata!.annotations!['fledge.dev/route-token'] = 'abc';
    expect(parseVirtualService(vs)).toMatchObject({ ok: false, reason: expect.stringMatching(/route-token is not at least 32/) });
  });
});

describe('route token: the local Envoy routes', () => {
  const upstreams = { v0: { host: 'h', port: 1 }, v1: { host: 'h', port: 2 }, v2: { host: 'h', port: 3 } };
  const routes = (over: object) => routeConfig([{ name: 'chat', stable: 'v1', canary: 'v2', routeToken: TOKEN, upstreams, ...over }]).virtual_hosts[0]!.routes;

  it('matches version AND token on a route per serving version, removing the token; then the weighted route', () => {
    const r = routes({ fallbackCanaryWeight: 25 });
    expect(r.map((x) => x.name)).toEqual(['chat-v1', 'chat-v2', 'chat-weighted']);
    expect(r[1]).toMatchObject({
      match: { headers: [{ name: 'x-fledge-version', string_match: { exact: 'v2' } }, { name: 'x-fledge-route-token', string_match: { exact: TOKEN } }] },
      request_headers_to_remove: ['x-fledge-route-token'],
      response_headers_to_add: [{ header: { key: 'x-fledge-served-by', value: 'v2' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
    });
    expect(r[2]).toMatchObject({ response_headers_to_remove: ['x-fledge-served-by'], route: { weighted_clusters: { clusters: [{ name: 'chat--v1', weight: 75 }, { name: 'chat--v2', weight: 25 }] } } });
  });

  it('has no route for a version that must not serve, and none at all without a token', () => {
    expect(routes({ canary: undefined }).map((x) => x.name)).toEqual(['chat-v1', 'chat-weighted']);
    expect(routes({ routeToken: undefined }).map((x) => x.name)).toEqual(['chat-weighted']);
  });
});

describe('a routing file never empties routing by accident', () => {
  it('rejects a zero-byte, blank or services-less file, naming the file; accepts one that says empty: true', () => {
    for (const [text, why] of [
      ['', /r\.yaml: the file is empty/],
      ['  \n', /r\.yaml: the file is empty/],
      ['services: {}', /r\.yaml: services: no services/],
      ['{}', /r\.yaml: services: no services/],
      ['empty: true\nservices: {chat: {stable: v1}}', /r\.yaml: empty: empty: true but 1 service/],
    ] as const) {
      expect(() => parseRoutingFile(text, 'r.yaml'), text).toThrow(ConfigError);
      expect(() => parseRoutingFile(text, 'r.yaml'), text).toThrow(why);
    }
    expect(parseRoutingFile('empty: true', 'r.yaml')).toEqual({ services: {}, empty: true });
    expect(parseRoutingFile(`services: {chat: {stable: v1, routeToken: ${TOKEN}}}`, 'r.yaml').services.chat).toMatchObject({ stable: 'v1', routeToken: TOKEN });
    expect(() => parseRoutingFile('services: {chat: {stable: v1, routeToken: short}}', 'r.yaml')).toThrow(/services\.chat\.routeToken: a route token is at least 32/);
  });
});

describe("the seed's flag and the rollout weight", () => {
  const dir = mkdtempSync(join(tmpdir(), 'fledge-flags-'));
  const file = join(dir, 'flags.json');
  let flags: VersionFlags;
  beforeAll(async () => {
    const { readFileSync } = await import('node:fs');
    writeFileSync(file, readFileSync(resolve(import.meta.dirname, '../fixtures/seed/flags.json'), 'utf8'));
    const provider = new FlagdFileProvider(file, pino({ level: 'silent' }));
    await OpenFeature.setProviderAndWait('route-token-test', provider);
    flags = new VersionFlags('inference-model-version', 'inference-kill-switch', 'route-token-test', provider);
  });
  afterAll(() => OpenFeature.close());

  it('decides only where the targeting names a variant other than the default (v1.2)', async () => {
    expect((await flags.evaluate({ targetingKey: 'a', segment: 'internal' })).flagVersion).toBe('v1.3');
    for (const segment of ['free', undefined]) expect((await flags.evaluate({ targetingKey: 'a', ...(segment ? { segment } : {}) })).flagVersion).toBeUndefined();
    const beta = await Promise.all(Array.from({ length: 400 }, (_, i) => flags.evaluate({ targetingKey: `beta-${i}`, segment: 'beta' })));
    const decided = beta.map((b) => b.flagVersion);
    // The v1.3 half decides; the v1.2 half (the default) is left to the weight.
    expect(new Set(decided)).toEqual(new Set(['v1.3', undefined]));
    const share = decided.filter((v) => v === 'v1.3').length / beta.length;
    expect(share).toBeGreaterThan(0.4);
    expect(share).toBeLessThan(0.6);
  });
});
