import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fledgeCli, packageFile } from '../../local/package-paths.js';

const seed = (name: string) => packageFile(`test/fixtures/seed/${name}`);
const dir = mkdtempSync(join(tmpdir(), 'fledge-validate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function validate(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [fledgeCli(), 'validate', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

interface JsonReport {
  files: { file: string; kind: string; valid: boolean; problems: { path: string; message: string }[] }[];
}

const BAD_CONDITION_POLICY = `apiVersion: fledge.dev/v1alpha1
kind: Policy
metadata: {name: strict}
spec:
  steps:
    - setWeight: 5
    - analysis: {templates: [{templateName: checks}]}
  analysisTemplates:
    - apiVersion: argoproj.io/v1alpha1
      kind: AnalysisTemplate
      metadata: {name: checks}
      spec:
        metrics:
          - name: error-rate
            provider: {prometheus: {query: "sum(rate(inference_errors_total[5m]))"}}
            successCondition: result[0] <<< 0.01
`;

describe('fledge validate', () => {
  it('accepts the seed rollout, analysis template and flag file, naming the kind it detected', () => {
    const run = validate(seed('rollout.yaml'), seed('analysis-template.yaml'), seed('flags.json'));
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`ok ${seed('rollout.yaml')} (policy: 1 rollout)`);
    expect(run.stdout).toContain(`ok ${seed('analysis-template.yaml')} (policy: 1 template)`);
    expect(run.stdout).toContain(`ok ${seed('flags.json')} (flags: 1 flag: inference-model-version)`);
  });

  it('checks policy files together: the seed rollout alone lacks its template', () => {
    const run = validate(seed('rollout.yaml'));
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`${seed('rollout.yaml')}: spec.strategy.canary.steps[2].analysis.templates[0].templateName: AnalysisTemplate "ai-quality-check" not found`);
  });

  it('checks several policy files together and puts each problem on its own file', () => {
    const template = file('template.yaml', 'kind: AnalysisTemplate\nmetadata: {name: shared}\nspec:\n  metrics:\n    - name: m\n      provider: {prometheus: {query: "vector(1)"}}\n      successCondition: result[0] > 0\n');
    const user = file('user.yaml', 'kind: Rollout\nmetadata: {name: r}\nspec:\n  strategy:\n    canary:\n      steps:\n        - analysis: {templates: [{templateName: shared}]}\n        - setWeight: 101\n');
    const run = validate(template, user);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`ok ${template} (policy: 1 template)`);
    expect(run.stdout).toContain(`invalid ${user} (policy: 1 problem)`);
    expect(run.stdout).toMatch(new RegExp(`^${escape(user)}: spec\\.strategy\\.canary\\.steps\\[1\\]\\.setWeight: `, 'm'));
  });

  it('reports a bad successCondition with the metric path and the reason', () => {
    const policy = file('bad-condition.yaml', BAD_CONDITION_POLICY);
    const run = validate(policy);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`invalid ${policy} (policy: 1 problem)`);
    expect(run.stdout).toMatch(
      new RegExp(`^${escape(policy)}: spec\\.analysisTemplates\\[0\\]\\.spec\\.metrics\\[0\\]\\.successCondition: metric error-rate: cannot parse "result\\[0\\] <<< 0\\.01"`, 'm'),
    );
  });

  it('reports a flag with a state flagd does not know', () => {
    const flags = file('bad-state.json', JSON.stringify({ flags: { 'inference-model-version': { state: 'ON', variants: { a: 'v1' }, defaultVariant: 'a' } } }));
    const run = validate(flags);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`invalid ${flags} (flags:`);
    expect(run.stdout).toMatch(new RegExp(`^${escape(flags)}: flags\\.inference-model-version\\.state: must be equal to one of the allowed values.*ENABLED`, 'm'));
    // Each problem once, even though flagd's schema reports it for every branch.
    expect(run.stdout.match(/\.state: must be equal/g)).toHaveLength(1);
  });

  it('reports an unknown field in a rollouts file', () => {
    const rollouts = file('rollouts.yaml', 'rollouts:\n  - service: chat\n    candidate: v2\n    colour: blue\n');
    const run = validate(rollouts);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`${rollouts}: rollouts[0]: Unrecognized key: "colour"`);
  });

  it('checks a rollouts file against its policy files', () => {
    file('policy-fast.yaml', 'kind: Policy\nmetadata: {name: fast}\nspec:\n  steps:\n    - setWeight: 100\n');
    const good = file('rollouts-good.yaml', 'rollouts:\n  - {service: chat, candidate: v2, policy: fast}\n  - {service: chat, candidate: v3}\npolicies: [policy-fast.yaml]\n');
    const bad = file('rollouts-bad.yaml', 'rollouts:\n  - {service: chat, candidate: v2, policy: slow}\npolicies: [policy-fast.yaml]\n');
    const ok = validate(good);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`ok ${good} (rollouts: 2 rollouts, 1 policy file)`);
    const run = validate(bad);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`${bad}: rollouts[0].policy: policy "slow" is not defined`);
  });

  it('reports duplicate rollout names', () => {
    const rollouts = file('rollouts-dup.yaml', 'rollouts:\n  - {service: chat, candidate: v2}\n  - {service: chat, candidate: v2}\n');
    const run = validate(rollouts);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`${rollouts}: rollouts[1]: the name chat-v2 is already used by rollouts[0]`);
  });

  it("checks a stack file's flag file", () => {
    file('stack-bad-flags.json', JSON.stringify({ flags: { f: { state: 'OFF', variants: { a: true }, defaultVariant: 'a' } } }));
    const stack = file('stack-with-flags.yaml', 'services:\n  chat: {stable: v1, versions: {v1: {}}}\nflags: stack-bad-flags.json\n');
    const run = validate(stack);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`${stack}: flags: ${join(dir, 'stack-bad-flags.json')}: flags.f.state: must be equal to one of the allowed values`);
  });

  it('reports a stack file whose stable is not one of its versions', () => {
    const stack = file('stack.yaml', 'services:\n  chat:\n    stable: v9\n    versions: {v1: {}, v2: {}}\n');
    const run = validate(stack);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`invalid ${stack} (stack: 1 problem)`);
    expect(run.stdout).toContain(`${stack}: services.chat.stable: stable must be one of versions`);
  });

  it('reports an extproc config with a port out of range', () => {
    const config = file('extproc.yaml', 'grpc: {port: 70000}\nrouting: {file: routing.json}\n');
    const run = validate(config);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`^${escape(config)}: grpc\\.port: .*65535`, 'm'));
  });

  it('tells a routing-state file from a stack file', () => {
    const routing = file('routing.json', JSON.stringify({ services: { chat: { stable: 'v1', canary: 'v2', canaryWeight: 10 } } }));
    const stack = file('stack-good.yaml', 'services:\n  chat:\n    stable: v1\n    versions: {v1: {}, v2: {}}\n');
    const run = validate(routing, stack);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`ok ${routing} (routing: 1 service)`);
    expect(run.stdout).toContain(`ok ${stack} (stack: 1 service, 2 model versions)`);
  });

  it('tells an extproc config with flag settings from a flag file', () => {
    const config = file('extproc-flags.yaml', 'routing: {file: routing.json}\nflags: {file: flags.json, versionFlag: model}\n');
    const onlyFlags = file('extproc-only-flags.yaml', 'flags: {file: flags.json}\n');
    const run = validate(config, onlyFlags);
    expect(run.stdout).toContain(`ok ${config} (extproc: routing from file routing.json, gRPC port 50051, admin port 9101)`);
    // Taken for an extproc config, whose routing is then missing.
    expect(run.stdout).toContain(`invalid ${onlyFlags} (extproc: 1 problem)`);
    expect(run.code).toBe(1);
  });

  it('uses --kind instead of guessing, and says when it cannot guess', () => {
    const unknown = file('unknown.yaml', 'hello: world\n');
    const guessed = validate(unknown);
    expect(guessed.code).toBe(1);
    expect(guessed.stdout).toContain(`${unknown}: cannot tell what kind of fledge file this is; pass --kind`);
    const forced = validate('--kind', 'extproc', unknown);
    expect(forced.code).toBe(1);
    expect(forced.stdout).toContain(`invalid ${unknown} (extproc:`);
    expect(forced.stdout).toContain(`${unknown}: Unrecognized key: "hello"`);
    expect(forced.stdout).toContain(`${unknown}: routing: required`);
  });

  it('fails with exit 2 and names a missing file, validating nothing', () => {
    const missing = join(dir, 'does-not-exist.yaml');
    const run = validate(seed('flags.json'), missing);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`fledge validate: ${missing}: no such file`);
    expect(run.stdout).toBe('');
  });

  it('exits 2 on a bad --kind', () => {
    const run = validate('--kind', 'bogus', seed('flags.json'));
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("argument 'bogus' is invalid");
  });

  it('prints the --json report shape, valid and invalid files alike', () => {
    const stack = file('stack-json.yaml', 'services:\n  chat:\n    stable: v9\n    versions: {v1: {}}\n');
    const run = validate('--json', seed('flags.json'), stack);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout) as JsonReport;
    expect(report).toEqual({
      files: [
        { file: seed('flags.json'), kind: 'flags', valid: true, problems: [] },
        { file: stack, kind: 'stack', valid: false, problems: [{ path: 'services.chat.stable', message: 'stable must be one of versions' }] },
      ],
    });
  });

  it('warns when a Sidecar hides the ext_proc cluster from workloads that get the filter; a List from kubectl works too', () => {
    const envoyFilter = packageFile('manifests/envoyfilter.yaml');
    const byPort = file('sidecar-by-port.yaml', [
      'apiVersion: networking.istio.io/v1',
      'kind: Sidecar',
      'metadata: {name: default, namespace: models}',
      'spec:',
      '  egress:',
      '    - port: {number: 8000, protocol: HTTP, name: http}',
      '      hosts: ["*/*"]',
      '',
    ].join('\n'));
    const run = validate(envoyFilter, byPort);
    // A warning, not a problem: the files are valid Istio resources.
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`ok ${envoyFilter} (mesh: 3 Istio resources, 0 Sidecars checked against 1 ext_proc filter)`);
    expect(run.stdout).toContain(`ok ${byPort} (mesh: 1 Istio resource, 1 Sidecar checked against 1 ext_proc filter; 1 warning)`);
    expect(run.stdout).toContain(`warning ${byPort}: document 1 (Sidecar models/default) spec.egress: hides the ext_proc cluster outbound|50051||fledge-extproc.fledge-system.svc.cluster.local from workloads that EnvoyFilter istio-system/fledge-extproc-sidecar-outbound gives the ext_proc filter`);

    // `kubectl get sidecars -A -o yaml`: a List; one Sidecar shows the cluster, one hides it by host.
    const list = file('sidecars-list.yaml', JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'ok', namespace: 'team-a' }, spec: { egress: [{ hosts: ['./*', 'fledge-system/fledge-extproc.fledge-system.svc.cluster.local'] }] } },
        { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'narrow', namespace: 'team-b' }, spec: { egress: [{ hosts: ['./*', 'istio-system/*'] }] } },
      ],
    }));
    const json = validate('--json', list);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { files: { kind: string; valid: boolean; warnings?: { path: string; message: string }[] }[] };
    expect(report.files[0]).toMatchObject({ kind: 'mesh', valid: true });
    expect(report.files[0]!.warnings?.map((w) => w.path)).toEqual(['document 1 items[1] (Sidecar team-b/narrow) spec.egress']);
    // Without an EnvoyFilter named, the check is against fledge's own.
    expect(report.files[0]!.warnings?.[0]!.message).toContain("fledge's EnvoyFilter fledge-extproc-sidecar-outbound (manifests/envoyfilter.yaml)");
  });

  it('names a rollout whose policy reads quality no evaluator of the stack produces (stack and rollouts named together)', () => {
    const golden = file('search-only-golden.yaml', 'entries:\n  - {id: x, service: search, prompt: "What is 2+2?", expect: {number: {value: 4}}}\n');
    const stack = file('uncovered-stack.yaml', `services:\n  chat:\n    stable: v1\n    versions: {v1: {}, v2: {}}\nprobes: {goldenFile: ${golden}}\n`);
    const rollouts = file('uncovered-rollouts.yaml', 'rollouts:\n  - {service: chat, candidate: v2, policy: default}\n');
    const run = validate(stack, rollouts);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`ok ${stack} (stack:`);
    expect(run.stdout).toContain(`invalid ${rollouts} (rollouts: 2 problems)`);
    expect(run.stdout).toContain(`${rollouts}: rollouts[0] (chat-v2): policy "default" metric quality-score reads inference_quality_score, but no evaluator produces quality scores for service "chat"`);
    expect(run.stdout).toContain('metric hallucination-rate reads inference_hallucination_total');
    // The rollouts file alone cannot be checked for coverage (no stack): valid.
    expect(validate(rollouts).code).toBe(0);
  });

  it('accepts the shipped real-model example: its probes cover the policy\'s metrics', () => {
    const stack = packageFile('examples/real-model/stack.yaml');
    const rollouts = packageFile('examples/real-model/rollouts.yaml');
    const run = validate(stack, rollouts, packageFile('examples/real-model/policy.yaml'));
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`ok ${rollouts} (rollouts: 2 rollouts, 1 policy file, every metric has an evaluator in ${stack})`);
  });

  it('has help text with examples', () => {
    const run = spawnSync(process.execPath, [fledgeCli(), 'validate', '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Usage: fledge validate [options] <files...>');
    expect(run.stdout).toContain('Examples:');
    expect(run.stdout).toContain('--kind <kind>');
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
