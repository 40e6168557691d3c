/**
 * `fledge validate`: checks fledge's files with the same validators the components use when
 * they load them, so a file that passes here is one they accept. Nothing here parses a
 * format of its own; it only picks the validator (from --kind or the file's content) and
 * turns its ConfigError into per-file problems.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../common/config-error.js';
import { parseStructured } from '../common/structured-file.js';
import { loadPolicyCatalog, loadPolicyFiles } from '../controller/policy/load.js';
import { readPolicyDocuments } from '../controller/policy/documents.js';
import { DOCUMENT_KINDS } from '../controller/policy/schema.js';
import { namedRollouts, rolloutsFileSchema } from '../controller/local/rollouts-file.js';
import { stackConfigSchema } from '../local/stack-config.js';
import { checkEvaluatorCoverage } from '../local/evaluator-inventory.js';
import { extprocConfigSchema } from '../extproc/config.js';
import { parseRoutingFile } from '../extproc/routing/state.js';
import { validateFlagdText } from '../extproc/flags/flagd-file-provider.js';
import { sidecarScopingWarnings, type MeshResource } from './sidecar-scoping.js';

export const FILE_KINDS = ['policy', 'rollouts', 'flags', 'stack', 'extproc', 'routing', 'mesh'] as const;
export type FileKind = (typeof FILE_KINDS)[number];

export interface FileProblem {
  path: string;
  message: string;
}

export interface FileResult {
  file: string;
  /** "unknown" when --kind auto could not tell. */
  kind: FileKind | 'unknown';
  valid: boolean;
  /** One line about what was found, for valid files. */
  summary?: string;
  problems: FileProblem[];
  /** Things that are valid but likely wrong (e.g. a Sidecar hiding the ext_proc cluster); they do not make the file invalid. */
  warnings?: FileProblem[];
}

/** A file named on the command line cannot be read: a usage error, not an invalid file. */
export class UnreadableFileError extends Error {}

/** Reads every file first, so a missing one stops the run before anything is reported. */
export function readInputs(files: readonly string[]): { file: string; text: string }[] {
  return files.map((file) => {
    try {
      if (statSync(file).isDirectory()) throw new UnreadableFileError(`${file} is a directory; name the files in it`);
      return { file, text: readFileSync(file, 'utf8') };
    } catch (err) {
      if (err instanceof UnreadableFileError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new UnreadableFileError(code === 'ENOENT' ? `${file}: no such file` : `cannot read ${file}: ${code ?? (err as Error).message}`);
    }
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * What kind of fledge file the text is, from its content; undefined when it is not YAML/JSON
 * or looks like none of them. Checked in an order that keeps look-alikes apart: a flag
 * file's `flags` holds flags (with variants), extproc's holds settings; a stack file's
 * `flags` is a path; a routing-state file's `services` have no `versions`.
 */
export function detectKind(text: string): FileKind | undefined {
  let docs: unknown[];
  try {
    const parsed = parseAllDocuments(text);
    const list = Array.isArray(parsed) ? parsed : [parsed];
    if (list.some((d) => d.errors.length)) return undefined;
    docs = list.map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined);
  } catch {
    return undefined;
  }
  const isPolicyDoc = (d: Record<string, unknown>) =>
    (DOCUMENT_KINDS as readonly unknown[]).includes(d.kind) ||
    (typeof d.apiVersion === 'string' && /^(argoproj\.io|fledge\.dev)\//.test(d.apiVersion));
  if (docs.some((d) => isObject(d) && isPolicyDoc(d))) return 'policy';
  if (docs.length > 0 && docs.every((d) => isObject(d) && isIstioDoc(d))) return 'mesh';
  if (docs.length !== 1 || !isObject(docs[0])) return undefined;
  const doc = docs[0];
  if (typeof doc.$schema === 'string' && doc.$schema.includes('flagd')) return 'flags';
  if ('rollouts' in doc) return 'rollouts';
  const services = isObject(doc.services) ? Object.values(doc.services) : [];
  if ('ports' in doc || services.some((s) => isObject(s) && 'versions' in s)) return 'stack';
  if (['routing', 'grpc', 'admin', 'quality'].some((k) => k in doc)) return 'extproc';
  // extproc's `flags:` holds settings (file, versionFlag, …); a flag file's holds flags.
  if (isObject(doc.flags)) {
    const flags = Object.values(doc.flags);
    if (flags.length === 0 || flags.some((f) => isObject(f) && ['variants', 'state', 'defaultVariant'].some((k) => k in f))) return 'flags';
    return 'extproc';
  }
  if ('services' in doc) return 'routing';
  return undefined;
}

const ISTIO_API = /^[a-z.]*\.istio\.io\//;
/** An Istio resource, or a `kubectl get -o yaml` List of them. */
function isIstioDoc(d: Record<string, unknown>): boolean {
  if (d.kind === 'List' && Array.isArray(d.items)) return d.items.length > 0 && d.items.every((i) => isObject(i) && typeof i.apiVersion === 'string' && ISTIO_API.test(i.apiVersion));
  return typeof d.apiVersion === 'string' && ISTIO_API.test(d.apiVersion);
}

/** The Istio resources of a file: each document, and the items of a List. */
function meshResources(file: string, text: string): MeshResource[] {
  const out: MeshResource[] = [];
  parseAllDocuments(text).forEach((d, i) => {
    if (d.errors.length) throw new ConfigError(file, [{ path: `document ${i + 1}`, message: `not valid YAML: ${d.errors[0]!.message}` }]);
    const doc = d.toJS() as unknown;
    if (!isObject(doc)) return;
    if (doc.kind === 'List' && Array.isArray(doc.items)) doc.items.forEach((item, j) => isObject(item) && out.push({ file, at: `document ${i + 1} items[${j}]`, doc: item }));
    else out.push({ file, at: `document ${i + 1}`, doc });
  });
  return out;
}

/**
 * Istio resources named together are checked together, as istiod combines them: each
 * Sidecar against the EnvoyFilters that insert fledge's ext_proc filter into sidecars (or,
 * with none named, fledge's own from manifests/envoyfilter.yaml).
 */
function validateMesh(inputs: { file: string; text: string }[]): FileResult[] {
  const parsed = inputs.map(({ file, text }) => {
    try {
      return { file, resources: meshResources(file, text) };
    } catch (err) {
      return { file, problems: problemsOf(err) };
    }
  });
  const { warnings, targets, assumedDefault } = sidecarScopingWarnings(parsed.flatMap((p) => p.resources ?? []));
  const against = assumedDefault ? "fledge's default ext_proc cluster" : count(targets.length, 'ext_proc filter');
  return parsed.map((p) => {
    if (p.problems) return { file: p.file, kind: 'mesh' as const, valid: false, problems: p.problems };
    const mine = warnings.filter((w) => w.file === p.file).map(({ path, message }) => ({ path, message }));
    const kinds = p.resources.map((r) => String(r.doc.kind));
    const sidecars = kinds.filter((k) => k === 'Sidecar').length;
    const summary = `${count(p.resources.length, 'Istio resource')}, ${count(sidecars, 'Sidecar')} checked against ${against}${mine.length ? `; ${count(mine.length, 'warning')}` : ''}`;
    return { file: p.file, kind: 'mesh' as const, valid: true, summary, problems: [], ...(mine.length ? { warnings: mine } : {}) };
  });
}

const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Problems of a ConfigError, or rethrows anything else (a bug, not a bad file). */
function problemsOf(err: unknown): FileProblem[] {
  if (err instanceof ConfigError) return err.problems.map(({ path, message }) => ({ path, message }));
  throw err;
}

/** Runs one validator; its ConfigError becomes the file's problems. */
function check(file: string, kind: FileKind, run: () => string): FileResult {
  try {
    return { file, kind, valid: true, summary: run(), problems: [] };
  } catch (err) {
    return { file, kind, valid: false, problems: problemsOf(err) };
  }
}

const silentLogger = { error() {}, warn() {}, info() {}, debug() {} };

function validateFlags(text: string, file: string): string {
  const keys = validateFlagdText(text, file, silentLogger);
  return `${count(keys.length, 'flag')}${keys.length ? `: ${keys.join(', ')}` : ''}`;
}

function validateRollouts(text: string, file: string): string {
  const parsed = parseStructured(text, rolloutsFileSchema, file);
  let rollouts;
  try {
    rollouts = namedRollouts(parsed, file);
  } catch (err) {
    // namedRollouts says "<file>: <path>: <reason>" in a plain Error.
    const rest = (err as Error).message.slice(file.length + 2);
    const at = rest.indexOf(': ');
    throw new ConfigError(file, [{ path: rest.slice(0, at), message: rest.slice(at + 2) }]);
  }
  // The policy files are relative to the rollouts file; the built-in default is always there.
  const policyFiles = parsed.policies.map((p) => resolve(dirname(file), p));
  const problems: FileProblem[] = [];
  let known = new Set(['default']);
  try {
    known = new Set(loadPolicyFiles(policyFiles).policies.keys());
  } catch (err) {
    for (const p of problemsOf(err)) problems.push({ path: 'policies', message: p.path ? `${p.path}: ${p.message}` : p.message });
  }
  if (problems.length === 0) {
    rollouts.forEach((r, i) => {
      if (!known.has(r.policy)) problems.push({ path: `rollouts[${i}].policy`, message: `policy "${r.policy}" is not defined (known: ${[...known].join(', ')})` });
    });
  }
  if (problems.length) throw new ConfigError(file, problems);
  return `${count(rollouts.length, 'rollout')}, ${count(policyFiles.length, 'policy file')}`;
}

function validateStack(text: string, file: string): string {
  const stack = parseStructured(text, stackConfigSchema, file);
  if (stack.flags !== undefined) {
    const flagsFile = resolve(dirname(file), stack.flags);
    let flagsText: string;
    try {
      flagsText = readFileSync(flagsFile, 'utf8');
    } catch (err) {
      throw new ConfigError(file, [{ path: 'flags', message: `cannot read ${flagsFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
    }
    try {
      validateFlagdText(flagsText, flagsFile, silentLogger);
    } catch (err) {
      throw new ConfigError(file, problemsOf(err).map((p) => ({ path: 'flags', message: `${flagsFile}: ${p.path ? `${p.path}: ` : ''}${p.message}` })));
    }
  }
  const versions = Object.values(stack.services).reduce((n, s) => n + Object.keys(s.versions).length, 0);
  return `${count(Object.keys(stack.services).length, 'service')}, ${count(versions, 'model version')}${stack.flags ? ', flag file ok' : ''}`;
}

function validateExtproc(text: string, file: string): string {
  const config = parseStructured(text, extprocConfigSchema, file);
  const routing = config.routing.source === 'file' ? `routing from file ${config.routing.file}` : 'routing from VirtualServices';
  return `${routing}, gRPC port ${config.grpc.port}, admin port ${config.admin.port}`;
}

function validateRouting(text: string, file: string): string {
  const routing = parseRoutingFile(text, file);
  return count(Object.keys(routing.services).length, 'service');
}

function policySummary(text: string, file: string): string {
  const docs = readPolicyDocuments(text, file, []);
  const parts: string[] = [];
  const policies = docs.stepLists.filter((s) => s.value.kind === 'Policy').length;
  const rollouts = docs.stepLists.length - policies;
  const templates = docs.templates.length + docs.stepLists.reduce((n, s) => n + s.value.localTemplates.length, 0);
  if (policies) parts.push(count(policies, 'policy', 'policies'));
  if (rollouts) parts.push(count(rollouts, 'rollout'));
  if (templates) parts.push(count(templates, 'template'));
  return parts.join(', ') || 'no documents';
}

/**
 * Policy files are checked together, as the controller loads them: a Rollout in one file may
 * use an AnalysisTemplate from another (the seed's rollout.yaml + analysis-template.yaml).
 */
function validatePolicies(inputs: { file: string; text: string }[]): FileResult[] {
  const byFile = new Map<string, FileProblem[]>(inputs.map((i) => [i.file, []]));
  try {
    loadPolicyCatalog(inputs.map(({ file, text }) => ({ source: file, text })), { includeDefault: false });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const single = inputs.length === 1 || byFile.has(err.source);
    for (const p of err.problems) {
      if (single) {
        byFile.get(err.source)?.push(p);
        continue;
      }
      // Several sources: load.ts prefixes each path with "<source>: ".
      const owner = inputs.map((i) => i.file).find((f) => p.path === f || p.path.startsWith(`${f}: `));
      if (owner === undefined) {
        for (const list of byFile.values()) list.push(p);
        continue;
      }
      byFile.get(owner)!.push({ path: p.path === owner ? '' : p.path.slice(owner.length + 2), message: p.message });
    }
  }
  // A template that is defined but invalid is reported where it is defined; "not found" at
  // its uses would only repeat that. One that is nowhere gets a hint instead.
  const declared = declaredTemplateNames(inputs.map((i) => i.text));
  const hint = 'give the file that defines it in the same run (policy files are checked together)';
  return inputs.map(({ file, text }) => {
    const problems = byFile.get(file)!.flatMap((p) => {
      const missing = /^AnalysisTemplate "(.*)" not found/.exec(p.message)?.[1];
      if (missing === undefined) return [p];
      return declared.has(missing) ? [] : [{ ...p, message: `${p.message}; ${hint}` }];
    });
    return problems.length
      ? { file, kind: 'policy' as const, valid: false, problems }
      : { file, kind: 'policy' as const, valid: true, summary: policySummary(text, file), problems: [] };
  });
}

/** Names of every AnalysisTemplate the texts declare, valid or not (standalone or in a Policy). */
function declaredTemplateNames(texts: readonly string[]): Set<string> {
  const names = new Set<string>();
  const add = (t: unknown) => {
    if (isObject(t) && isObject(t.metadata) && typeof t.metadata.name === 'string') names.add(t.metadata.name);
  };
  for (const text of texts) {
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length) continue;
      const raw: unknown = doc.toJS();
      if (!isObject(raw)) continue;
      if (raw.kind === 'AnalysisTemplate' || raw.kind === 'ClusterAnalysisTemplate') add(raw);
      if (raw.kind === 'Policy' && isObject(raw.spec) && Array.isArray(raw.spec.analysisTemplates)) raw.spec.analysisTemplates.forEach(add);
    }
  }
  return names;
}

/** One line per problem, each once (flagd's schema can report the same one several times). */
function tidy(result: FileResult): FileResult {
  const seen = new Set<string>();
  const problems = result.problems
    .map(({ path, message }) => ({ path, message: message.includes('\n') ? message.split('\n')[0]!.replace(/:\s*$/, '') : message }))
    .filter((p) => {
      const key = `${p.path}\0${p.message}`;
      return !seen.has(key) && (seen.add(key), true);
    });
  return { ...result, problems };
}

/** Validates every input; `kind` "auto" picks each file's kind from its content. */
export function validateInputs(inputs: { file: string; text: string }[], kind: FileKind | 'auto'): FileResult[] {
  const kinds = inputs.map((i) => (kind === 'auto' ? detectKind(i.text) : kind));
  const policyResults = validatePolicies(inputs.filter((_, i) => kinds[i] === 'policy'));
  const meshResults = validateMesh(inputs.filter((_, i) => kinds[i] === 'mesh'));
  const results = inputs.map(({ file, text }, i) => tidy(kinds[i] === 'mesh' ? meshResults.find((r) => r.file === file)! : validateOne(file, text, kinds[i], policyResults)));
  return checkCoverage(inputs, results);
}

/**
 * A stack file named with rollouts files: each rollout's policy must read only metrics the
 * stack's evaluators produce for its service (the check `fledge up` and the local
 * controller make at start); the problems go to the rollouts file.
 */
function checkCoverage(inputs: { file: string; text: string }[], results: FileResult[]): FileResult[] {
  const stacks = results.filter((r) => r.kind === 'stack' && r.valid);
  if (stacks.length !== 1) return results;
  const stackIndex = results.indexOf(stacks[0]!);
  const stack = parseStructured(inputs[stackIndex]!.text, stackConfigSchema, stacks[0]!.file);
  return results.map((r) => {
    if (r.kind !== 'rollouts' || !r.valid) return r;
    try {
      checkEvaluatorCoverage(stack, r.file);
      return { ...r, summary: `${r.summary}, every metric has an evaluator in ${stacks[0]!.file}` };
    } catch (err) {
      return { file: r.file, kind: r.kind, valid: false, problems: problemsOf(err) };
    }
  });
}

function validateOne(file: string, text: string, k: FileKind | undefined, policyResults: FileResult[]): FileResult {
  switch (k) {
    case undefined:
      return { file, kind: 'unknown', valid: false, problems: [{ path: '', message: unknownKindMessage(text) }] };
    case 'policy':
      return policyResults.find((r) => r.file === file)!;
    case 'flags':
      return check(file, k, () => validateFlags(text, file));
    case 'rollouts':
      return check(file, k, () => validateRollouts(text, file));
    case 'stack':
      return check(file, k, () => validateStack(text, file));
    case 'extproc':
      return check(file, k, () => validateExtproc(text, file));
    case 'routing':
      return check(file, k, () => validateRouting(text, file));
    case 'mesh':
      return validateMesh([{ file, text }])[0]!;
  }
}

function unknownKindMessage(text: string): string {
  const parsed = parseAllDocuments(text);
  const error = (Array.isArray(parsed) ? parsed : [parsed]).flatMap((d) => d.errors)[0];
  if (error) return `not valid YAML/JSON: ${error.message}`;
  return `cannot tell what kind of fledge file this is; pass --kind ${FILE_KINDS.join('|')}`;
}

/** The human-readable report: "ok <file> (<kind>: <summary>)" or one line per problem. */
export function formatText(results: readonly FileResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    if (r.valid) {
      lines.push(`ok ${r.file} (${r.kind}: ${r.summary})`);
      for (const w of r.warnings ?? []) lines.push(`warning ${r.file}: ${w.path ? `${w.path}: ` : ''}${w.message}`);
      continue;
    }
    lines.push(`invalid ${r.file} (${r.kind}: ${count(r.problems.length, 'problem')})`);
    for (const p of r.problems) lines.push(`${r.file}: ${p.path ? `${p.path}: ` : ''}${p.message}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatJson(results: readonly FileResult[]): string {
  return `${JSON.stringify({ files: results.map(({ file, kind, valid, problems, warnings }) => ({ file, kind, valid, problems, ...(warnings?.length ? { warnings } : {}) })) }, null, 2)}\n`;
}
