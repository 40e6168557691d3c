import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { egressShows, extprocTargets, hostImported, sidecarScopingWarnings, type MeshResource } from '../../cli/sidecar-scoping.js';

const HOST = 'fledge-extproc.fledge-system.svc.cluster.local';
const shipped: MeshResource[] = parseAllDocuments(readFileSync('manifests/envoyfilter.yaml', 'utf8')).map((d, i) => ({ file: 'envoyfilter.yaml', at: `document ${i + 1}`, doc: d.toJS() as Record<string, unknown> }));

function sidecar(namespace: string, egress: unknown, workloadSelector?: Record<string, string>): MeshResource {
  return {
    file: 'sidecars.yaml',
    at: 'document 1',
    doc: { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'scope', namespace }, spec: { ...(workloadSelector ? { workloadSelector: { labels: workloadSelector } } : {}), egress } },
  };
}

describe('Sidecar scoping check (fledge validate, kind mesh)', () => {
  it('finds the sidecar ext_proc filter of manifests/envoyfilter.yaml, not the gateway one (Sidecars do not scope gateways)', () => {
    const targets = shipped.flatMap(extprocTargets);
    expect(targets).toEqual([
      { source: 'EnvoyFilter istio-system/fledge-extproc-sidecar-outbound', namespace: 'istio-system', selector: { 'fledge.dev/extproc': 'enabled' }, cluster: `outbound|50051||${HOST}`, host: HOST, port: 50051 },
    ]);
  });

  it('reads egress host patterns as Istio does: namespace/dnsName with *, . and ~', () => {
    expect(hostImported(`fledge-system/${HOST}`, 'models', HOST)).toBe(true);
    expect(hostImported('*/*', 'models', HOST)).toBe(true);
    expect(hostImported('fledge-system/*', 'models', HOST)).toBe(true);
    expect(hostImported('*/*.svc.cluster.local', 'models', HOST)).toBe(true);
    expect(hostImported('./*', 'models', HOST)).toBe(false);
    expect(hostImported('./*', 'fledge-system', HOST)).toBe(true);
    expect(hostImported('~/*', 'models', HOST)).toBe(false);
    expect(hostImported('istio-system/*', 'models', HOST)).toBe(false);
    expect(hostImported(HOST, 'models', HOST)).toBe(false);
  });

  it('a Sidecar shows the cluster with no egress, or a listener without a port or on 50051 that imports it', () => {
    const doc = (egress: unknown) => sidecar('models', egress).doc;
    expect(egressShows(doc(undefined), HOST, 50051)).toBe(true);
    expect(egressShows(doc([{ hosts: ['./*', 'istio-system/*', `fledge-system/${HOST}`] }]), HOST, 50051)).toBe(true);
    expect(egressShows(doc([{ port: { number: 50051, protocol: 'GRPC', name: 'grpc' }, hosts: ['fledge-system/*'] }]), HOST, 50051)).toBe(true);
    // By host: only the namespace's own services and istio-system.
    expect(egressShows(doc([{ hosts: ['./*', 'istio-system/*'] }]), HOST, 50051)).toBe(false);
    // By port (what the issue saw): every host, but only port 8000.
    expect(egressShows(doc([{ port: { number: 8000, protocol: 'HTTP', name: 'http' }, hosts: ['*/*'] }]), HOST, 50051)).toBe(false);
  });

  it('warns for a Sidecar that hides the cluster from workloads the filter selects, naming the Sidecar, the EnvoyFilter and the fix', () => {
    const hiding = sidecar('models', [{ hosts: ['./*', 'istio-system/*'] }]);
    const { warnings } = sidecarScopingWarnings([...shipped, hiding]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.file).toBe('sidecars.yaml');
    expect(warnings[0]!.path).toBe('document 1 (Sidecar models/scope) spec.egress');
    expect(warnings[0]!.message).toContain(`hides the ext_proc cluster outbound|50051||${HOST} from workloads that EnvoyFilter istio-system/fledge-extproc-sidecar-outbound gives the ext_proc filter (fledge.dev/extproc=enabled)`);
    expect(warnings[0]!.message).toContain(`Add "fledge-system/${HOST}" to an egress listener without a port or on port 50051`);
  });

  it('stays quiet for Sidecars that show the cluster or select other workloads, and for EnvoyFilters of another namespace', () => {
    const fine = sidecar('models', [{ hosts: ['./*', `fledge-system/${HOST}`] }]);
    const otherWorkloads = sidecar('models', [{ hosts: ['./*'] }], { 'fledge.dev/extproc': 'disabled' });
    expect(sidecarScopingWarnings([...shipped, fine, otherWorkloads]).warnings).toEqual([]);
    // An EnvoyFilter outside the root namespace reaches only its own namespace's workloads.
    const local = shipped.map((r) => ({ ...r, doc: { ...r.doc, metadata: { ...(r.doc.metadata as object), namespace: 'team-a' } } }));
    expect(sidecarScopingWarnings([...local, sidecar('models', [{ hosts: ['./*'] }])]).warnings).toEqual([]);
    expect(sidecarScopingWarnings([...local, sidecar('team-a', [{ hosts: ['./*'] }])]).warnings).toHaveLength(1);
    // A root-namespace Sidecar is the mesh-wide default.
    expect(sidecarScopingWarnings([...local, sidecar('istio-system', [{ hosts: ['./*'] }])]).warnings).toHaveLength(1);
  });

  it('without an EnvoyFilter named, checks against fledge\'s shipped one', () => {
    const result = sidecarScopingWarnings([sidecar('models', [{ port: { number: 8000 }, hosts: ['*/*'] }])]);
    expect(result.assumedDefault).toBe(true);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]!.message).toContain("fledge's EnvoyFilter fledge-extproc-sidecar-outbound (manifests/envoyfilter.yaml)");
  });
});
