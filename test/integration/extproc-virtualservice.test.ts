// extproc's cluster-mode routing source against a real kube-apiserver, authenticated as
// the fledge-extproc ServiceAccount with only the RBAC in manifests/rbac.yaml.
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backoff } from '../../extproc/routing/backoff.js';
import { VirtualServiceRoutingSource } from '../../extproc/routing/virtualservice-source.js';
import { startKube, type KubeHarness } from '../harness/kube.js';
import { TcpProxy } from '../harness/tcp-proxy.js';
import { applyVirtualService, deleteVirtualService, ensureNamespace, fledgeVirtualService, until } from '../harness/virtualservices.js';

/** A pino logger whose records the test can read. */
function capturedLogger() {
  const records: { level: number; msg: string; [k: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) records.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), records };
}

function throughServer(kc: KubeConfig, server: string): KubeConfig {
  const copy = new KubeConfig();
  copy.loadFromOptions({
    clusters: kc.clusters.map((c) => ({ ...c, server })),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return copy;
}

describe('VirtualService routing source (real kube-apiserver, extproc ServiceAccount)', () => {
  let kube: KubeHarness;
  let extprocKc: KubeConfig;
  const log = capturedLogger();
  let source: VirtualServiceRoutingSource;

  beforeAll(async () => {
    kube = await startKube();
    await kube.apply(await readFile(new URL('../../manifests/rbac.yaml', import.meta.url), 'utf8'));
    await ensureNamespace(kube, 'models');
    await ensureNamespace(kube, 'other');
    // Present before the source starts: must come from the initial list.
    await applyVirtualService(kube, {
      name: 'chat',
      namespace: 'models',
      canaryWeight: 10,
      annotations: { 'fledge.dev/canary-subset': 'v2', 'fledge.dev/rollout-hashes': '{"v1":"aaa111","v2":"bbb222"}' },
    });
    extprocKc = await kube.kubeconfigFor('fledge-extproc', 'fledge-system');
    source = new VirtualServiceRoutingSource({ kubeConfig: extprocKc, watchTimeoutSeconds: 5 }, log.logger);
    await source.start();
  });
  afterAll(async () => {
    source?.stop();
    await kube?.stop();
  });

  it('is ready after the initial list, with the state of existing VirtualServices under every host form', () => {
    expect(source.ready()).toBe(true);
    const chat = source.lookup('chat');
    expect(chat).toEqual({ service: 'chat', stable: 'v1', canary: 'v2', canaryWeight: 10, killed: false, rolloutHashes: { v1: 'aaa111', v2: 'bbb222' } });
    for (const host of ['chat.models', 'chat.models.svc', 'chat.models.svc.cluster.local']) expect(source.lookup(host)).toBe(chat);
    expect(source.lookup('unknown')).toBeUndefined();
  });

  it('follows weight changes, the kill annotation and new rollout hashes', async () => {
    const annotations = { 'fledge.dev/canary-subset': 'v2', 'fledge.dev/rollout-hashes': '{"v1":"aaa111","v2":"bbb222"}' };
    for (const weight of [25, 50, 100, 0]) {
      await applyVirtualService(kube, { name: 'chat', namespace: 'models', canaryWeight: weight, annotations });
      await until(`canaryWeight ${weight}`, () => source.lookup('chat')?.canaryWeight === weight);
      // Annotated, so 100% keeps v2 as the canary.
      expect(source.lookup('chat')).toMatchObject({ stable: 'v1', canary: 'v2' });
    }
    await applyVirtualService(kube, { name: 'chat', namespace: 'models', canaryWeight: 50, annotations: { ...annotations, 'fledge.dev/killed': 'true' } });
    await until('killed', () => source.lookup('chat')?.killed === true);
    expect(source.lookup('chat')?.canaryWeight).toBe(50);
    await applyVirtualService(kube, {
      name: 'chat',
      namespace: 'models',
      canaryWeight: 50,
      annotations: { 'fledge.dev/canary-subset': 'v2', 'fledge.dev/rollout-hashes': '{"v1":"aaa111","v2":"ccc333"}' },
    });
    await until('un-killed with new hash', () => source.lookup('chat')?.killed === false && source.lookup('chat')?.rolloutHashes.v2 === 'ccc333');
  });

  it('skips a VirtualService it cannot understand, logging namespace/name and reason, and serves the rest', async () => {
    await applyVirtualService(kube, { name: 'summarize', namespace: 'other', canaryWeight: 30 });
    await until('summarize', () => source.lookup('summarize') !== undefined);
    // Valid for Istio's schema, not for fledge: the kill annotation must be "true" or "false".
    await applyVirtualService(kube, { name: 'broken', namespace: 'other', canaryWeight: 5, annotations: { 'fledge.dev/killed': 'maybe' } });
    await until('broken logged', () => log.records.some((r) => r.virtualService === 'other/broken'));
    const record = log.records.find((r) => r.virtualService === 'other/broken')!;
    expect(record.level).toBe(50);
    expect(record.reason).toMatch(/fledge\.dev\/killed is "maybe"/);
    expect(record.msg).toContain('other/broken');
    expect(source.lookup('broken')).toBeUndefined();
    expect(source.lookup('summarize')).toMatchObject({ stable: 'v1', canary: 'v2', canaryWeight: 30 });
    expect(source.lookup('chat')).toBeDefined();
    expect(source.diagnostics().skipped).toMatchObject({ 'other/broken': expect.stringMatching(/killed/) });
  });

  it('keeps the last good state of a VirtualService that turns malformed, and picks up its fix', async () => {
    await applyVirtualService(kube, { name: 'translate', namespace: 'other', canaryWeight: 20 });
    await until('translate at 20', () => source.lookup('translate')?.canaryWeight === 20);
    const before = log.records.length;
    await applyVirtualService(kube, { name: 'translate', namespace: 'other', canaryWeight: 60, annotations: { 'fledge.dev/rollout-hashes': 'not json' } });
    await until('translate rejected', () => log.records.slice(before).some((r) => r.virtualService === 'other/translate'));
    expect(log.records.slice(before).find((r) => r.virtualService === 'other/translate')).toMatchObject({ keptLastGood: true });
    expect(source.lookup('translate')?.canaryWeight).toBe(20);
    await applyVirtualService(kube, { name: 'translate', namespace: 'other', canaryWeight: 60, annotations: { 'fledge.dev/canary-subset': 'v2' } });
    await until('translate fixed at 60', () => source.lookup('translate')?.canaryWeight === 60);
    expect(source.lookup('translate')).toMatchObject({ stable: 'v1', canary: 'v2' });
    expect(source.diagnostics().skipped).not.toHaveProperty('other/translate');
  });

  it('forgets a deleted VirtualService', async () => {
    await applyVirtualService(kube, { name: 'gone', namespace: 'models', canaryWeight: 40 });
    await until('gone present', () => source.lookup('gone') !== undefined);
    await deleteVirtualService(kube.adminKubeConfig, 'models', 'gone');
    await until('gone deleted', () => source.lookup('gone') === undefined);
    expect(source.snapshot().map((s) => s.service)).not.toContain('gone');
    expect(source.lookup('chat')).toBeDefined();
  });

  it('keeps renewing its watch (server-side watch timeout) without losing changes', async () => {
    // watchTimeoutSeconds is 5: the server ends each watch after 5 s and the source opens a new one.
    const opened = source.diagnostics().watchesOpened as number;
    await until('a renewed watch', () => (source.diagnostics().watchesOpened as number) > opened, 12_000);
    await applyVirtualService(kube, { name: 'chat', namespace: 'models', canaryWeight: 33, annotations: { 'fledge.dev/canary-subset': 'v2' } });
    await until('chat at 33', () => source.lookup('chat')?.canaryWeight === 33);
  });

  it('resolves two VirtualServices claiming one host by namespace/name, warning once', async () => {
    const conflictLogs = () => log.records.filter((r) => typeof r.msg === 'string' && r.msg.includes('claim host chat;')).length;
    await applyVirtualService(kube, { name: 'chat', namespace: 'other', canaryWeight: 77, annotations: { 'fledge.dev/canary-subset': 'v2' } });
    await until('other/chat wins', () => source.lookup('chat')?.canaryWeight === 77);
    expect(conflictLogs()).toBe(1);
    await applyVirtualService(kube, { name: 'summarize', namespace: 'other', canaryWeight: 31 });
    await until('summarize at 31', () => source.lookup('summarize')?.canaryWeight === 31);
    expect(conflictLogs()).toBe(1);
    await deleteVirtualService(kube.adminKubeConfig, 'other', 'chat');
    await until('models/chat back', () => source.lookup('chat') !== undefined && source.lookup('chat')?.canaryWeight !== 77);
  });

  it('watches a single namespace when asked to', async () => {
    const scoped = new VirtualServiceRoutingSource({ kubeConfig: extprocKc, namespace: 'other' }, capturedLogger().logger);
    await scoped.start();
    try {
      expect(scoped.lookup('summarize')).toBeDefined();
      expect(scoped.lookup('chat')).toBeUndefined();
    } finally {
      scoped.stop();
    }
  });

  it('rides out a broken connection: keeps the last good state, reconnects with backoff, and catches up', async () => {
    const proxy = await new TcpProxy('127.0.0.1', Number(new URL(kube.server).port)).start();
    const viaProxy = new VirtualServiceRoutingSource(
      { kubeConfig: throughServer(extprocKc, `https://127.0.0.1:${proxy.port}`), namespace: 'models', backoff: new Backoff(50, 500) },
      capturedLogger().logger,
    );
    try {
      await viaProxy.start();
      await applyVirtualService(kube, { name: 'chat', namespace: 'models', canaryWeight: 44, annotations: { 'fledge.dev/canary-subset': 'v2' } });
      await until('chat at 44 via proxy', () => viaProxy.lookup('chat')?.canaryWeight === 44);
      proxy.cut();
      await until('a failed reconnect', () => viaProxy.diagnostics().lastError !== null);
      // While the API server is unreachable the last good state stays in force...
      expect(viaProxy.ready()).toBe(true);
      expect(viaProxy.lookup('chat')?.canaryWeight).toBe(44);
      // ...and a change made meanwhile is seen once the network is back.
      await applyVirtualService(kube, { name: 'chat', namespace: 'models', canaryWeight: 66, annotations: { 'fledge.dev/canary-subset': 'v2' } });
      proxy.restore();
      await until('chat at 66 after reconnect', () => viaProxy.lookup('chat')?.canaryWeight === 66);
    } finally {
      viaProxy.stop();
      await proxy.stop();
    }
  });

  it('fails to start with the server and the API error when the ServiceAccount may not list', async () => {
    // The controller's ServiceAccount may list VirtualServices; a fresh SA with no RBAC may not.
    await kube.apply(JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'nobody', namespace: 'fledge-system' } }));
    const nobody = new VirtualServiceRoutingSource(
      { kubeConfig: await kube.kubeconfigFor('nobody', 'fledge-system'), syncTimeoutMs: 1_500, backoff: new Backoff(50, 200) },
      capturedLogger().logger,
    );
    await expect(nobody.start()).rejects.toThrow(/cannot list VirtualServices \(https:\/\/127\.0\.0\.1:\d+, all namespaces\) within 1500 ms: HTTP 403/);
    expect(nobody.ready()).toBe(false);
  });
});
