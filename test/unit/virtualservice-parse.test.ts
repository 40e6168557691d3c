import { describe, expect, it } from 'vitest';
import { parseStructured } from '../../common/structured-file.js';
import { extprocConfigSchema } from '../../extproc/config.js';
import { Backoff } from '../../extproc/routing/backoff.js';
import { expandHosts, parseVirtualService } from '../../extproc/routing/virtualservice-parse.js';

function vs(opts: { annotations?: Record<string, string>; hosts?: string[]; weights?: [number, number]; subsets?: [string, string]; http?: unknown[] } = {}) {
  const [a, b] = opts.subsets ?? ['v1', 'v2'];
  const [wa, wb] = opts.weights ?? [90, 10];
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'chat', namespace: 'models', resourceVersion: '1', annotations: opts.annotations },
    spec: {
      hosts: opts.hosts ?? ['chat'],
      http: opts.http ?? [
        { name: 'v1', match: [{ headers: { 'x-fledge-version': { exact: a } } }], route: [{ destination: { host: 'chat', subset: a } }] },
        { name: 'v2', match: [{ headers: { 'x-fledge-version': { exact: b } } }], route: [{ destination: { host: 'chat', subset: b } }] },
        { name: 'weighted', route: [{ destination: { host: 'chat', subset: a }, weight: wa }, { destination: { host: 'chat', subset: b }, weight: wb }] },
      ],
    },
  };
}

function ok(object: unknown) {
  const parsed = parseVirtualService(object);
  if (!parsed.ok) throw new Error(`expected a usable VirtualService, got: ${parsed.reason}`);
  return parsed;
}

function reason(object: unknown): string {
  const parsed = parseVirtualService(object);
  if (parsed.ok) throw new Error('expected the VirtualService to be rejected');
  return parsed.reason;
}

describe('parseVirtualService', () => {
  it('takes stable, canary and weight from the weighted route, skipping the x-fledge-version routes', () => {
    const { routing } = ok(vs({ weights: [75, 25] }));
    expect(routing).toEqual({ service: 'chat', stable: 'v1', canary: 'v2', canaryWeight: 25, killed: false, rolloutHashes: {} });
  });

  it('without annotations the smaller weight is the canary; on a tie the second destination', () => {
    expect(ok(vs({ weights: [20, 80] })).routing).toMatchObject({ stable: 'v2', canary: 'v1', canaryWeight: 20 });
    expect(ok(vs({ weights: [50, 50] })).routing).toMatchObject({ stable: 'v1', canary: 'v2', canaryWeight: 50 });
  });

  it('follows the canary/stable annotations, so 100% canary stays the canary', () => {
    const annotated = ok(vs({ weights: [0, 100], annotations: { 'fledge.dev/canary-subset': 'v2' } })).routing;
    expect(annotated).toMatchObject({ stable: 'v1', canary: 'v2', canaryWeight: 100 });
    const byStable = ok(vs({ weights: [0, 100], annotations: { 'fledge.dev/stable-subset': 'v1' } })).routing;
    expect(byStable).toMatchObject({ stable: 'v1', canary: 'v2', canaryWeight: 100 });
  });

  it('normalises weights that do not sum to 100', () => {
    expect(ok(vs({ weights: [3, 1] })).routing.canaryWeight).toBe(25);
  });

  it('reads the kill switch, rollout hashes and service annotations', () => {
    const { routing } = ok(
      vs({ annotations: { 'fledge.dev/killed': 'true', 'fledge.dev/rollout-hashes': '{"v1":"abc","v2":"def"}', 'fledge.dev/service': 'assistant' } }),
    );
    expect(routing).toMatchObject({ service: 'assistant', killed: true, rolloutHashes: { v1: 'abc', v2: 'def' } });
    expect(ok(vs({ annotations: { 'fledge.dev/killed': 'false' } })).routing.killed).toBe(false);
  });

  it("reads the canary's guardrail limits (fledge.dev/guardrail) and rejects malformed ones, naming the field", () => {
    const limits = { errorRate: 0.1, hallucinationRate: 0.2, minSamples: 50, window: 50, maxAgeSeconds: 60 };
    expect(ok(vs({ annotations: { 'fledge.dev/guardrail': JSON.stringify(limits) } })).routing.guardrail).toEqual(limits);
    // No canary on the weighted route: nothing to guard.
    const single = ok(vs({ annotations: { 'fledge.dev/guardrail': JSON.stringify(limits) }, http: [{ name: 'weighted', route: [{ destination: { host: 'chat', subset: 'v1' } }] }] }));
    expect(single.routing.guardrail).toBeUndefined();
    expect(reason(vs({ annotations: { 'fledge.dev/guardrail': '{bad' } }))).toMatch(/fledge.dev\/guardrail is not valid JSON/);
    expect(reason(vs({ annotations: { 'fledge.dev/guardrail': JSON.stringify({ ...limits, minSamples: 80 }) } }))).toMatch(/fledge.dev\/guardrail: minSamples: minSamples must not exceed window/);
  });

  it('treats a route with one subset destination as stable only', () => {
    const { routing } = ok(vs({ http: [{ route: [{ destination: { host: 'chat', subset: 'v3' } }] }] }));
    expect(routing).toMatchObject({ stable: 'v3', canary: undefined, canaryWeight: 0 });
  });

  it('names the service after the first host label', () => {
    expect(ok(vs({ hosts: ['Summarize.models.svc.cluster.local', 'summarize'] })).routing.service).toBe('summarize');
  });

  it('rejects what it cannot understand, saying why', () => {
    expect(reason(vs({ annotations: { 'fledge.dev/killed': 'yes' } }))).toMatch(/fledge\.dev\/killed is "yes"/);
    expect(reason(vs({ annotations: { 'fledge.dev/rollout-hashes': '{v1:' } }))).toMatch(/rollout-hashes is not valid JSON/);
    expect(reason(vs({ annotations: { 'fledge.dev/rollout-hashes': '["a"]' } }))).toMatch(/rollout-hashes: expected a JSON object/);
    expect(reason(vs({ annotations: { 'fledge.dev/canary-subset': 'v9' } }))).toMatch(/canary-subset "v9" is not a subset of the weighted route \(v1, v2\)/);
    expect(reason(vs({ annotations: { 'fledge.dev/canary-subset': 'v2', 'fledge.dev/stable-subset': 'v2' } }))).toMatch(/same subset/);
    expect(reason(vs({ subsets: ['v1', 'v1'] }))).toMatch(/same subset "v1"/);
    expect(reason(vs({ weights: [0, 0] }))).toMatch(/no weight/);
    expect(reason(vs({ http: [{ route: [{ destination: { host: 'chat' } }] }] }))).toMatch(/no http route with two subset destinations/);
    expect(reason(vs({ hosts: [] }))).toMatch(/spec\.hosts/);
    expect(reason(vs({ hosts: ['*.example.com'] }))).toMatch(/cannot derive a service name/);
    expect(reason({ metadata: { name: 'x' } })).toMatch(/^spec/);
  });
});

describe('expandHosts', () => {
  it('maps short names and in-namespace FQDNs to every in-cluster form, and skips wildcards', () => {
    const forms = ['chat', 'chat.models', 'chat.models.svc', 'chat.models.svc.cluster.local'];
    expect(new Set(expandHosts(['chat'], 'models'))).toEqual(new Set(forms));
    expect(new Set(expandHosts(['chat.models.svc.cluster.local'], 'models'))).toEqual(new Set(forms));
    expect(expandHosts(['chat.example.com', '*.example.com'], 'models')).toEqual(['chat.example.com']);
  });
});

describe('routing config', () => {
  it('accepts the virtualservice source without a file and requires a file for the file source', () => {
    const config = parseStructured('routing: {source: virtualservice, namespace: models}', extprocConfigSchema, 'x.yaml');
    expect(config.routing).toEqual({ source: 'virtualservice', namespace: 'models', syncTimeoutSeconds: 30 });
    expect(parseStructured('routing: {file: r.yaml}', extprocConfigSchema, 'x.yaml').routing).toEqual({ source: 'file', file: 'r.yaml' });
    expect(() => parseStructured('routing: {source: file}', extprocConfigSchema, 'x.yaml')).toThrow(/routing\.file: routing\.file is required/);
    expect(() => parseStructured('routing: {source: k8s}', extprocConfigSchema, 'x.yaml')).toThrow(/routing\.source: routing\.source must be "file" or "virtualservice"/);
    expect(() => parseStructured('routing: {source: virtualservice, file: r.yaml}', extprocConfigSchema, 'x.yaml')).toThrow(/routing\.file: routing\.file applies only/);
    expect(() => parseStructured('routing: {source: virtualservice, namespace: Bad_NS}', extprocConfigSchema, 'x.yaml')).toThrow(/routing\.namespace: a namespace is a DNS label/);
  });
});

describe('Backoff', () => {
  it('grows to its ceiling and resets', () => {
    const b = new Backoff(100, 1000, () => 1);
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000]);
    b.reset();
    expect(b.next()).toBe(100);
  });
});
