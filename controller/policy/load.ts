/**
 * Policy loading: YAML text (a fledge Policy, an Argo Rollout, AnalysisTemplates, in any
 * mix of documents and sources) → named, fully checked Policies. Whatever can be wrong
 * with a policy is found here, so a rollout never discovers it halfway through.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../common/config-error.js';
import { mergeArgs, referencedArgs, type ArgSpec } from '../analysis/args.js';
import { compileCondition } from '../analysis/condition.js';
import { countQueries } from './compare.js';
import { builtInPolicyEntries, defaultPolicyEntry, SHADOW_POLICY_NAME } from './default-policy.js';
import { GUARDRAIL_METRIC, guardrailMetric, resolveGuardrail } from './guardrail.js';
import { joinPath, readPolicyDocuments, type Located, type Problem, type StepList } from './documents.js';
import type { BackgroundAnalysis, Policy, PolicyStep, ResolvedAnalysis } from './policy.js';
import { durationMs, type AnalysisStep, type AnalysisTemplate, type BackgroundAnalysisSpec, type Metric, type Step } from './schema.js';

export interface PolicySource {
  /** File name or ConfigMap key, used in messages. */
  source: string;
  text: string;
  /** Names the policy defined by this text (e.g. the ConfigMap key); it must define exactly one. */
  name?: string;
}

export interface PolicyCatalog {
  policies: Map<string, Policy>;
  templates: Map<string, AnalysisTemplate>;
}

export interface CatalogOptions {
  /** Adds the built-in policies (`default`, `shadow-canary`) unless a source defines the name (default true). */
  includeDefault?: boolean;
}

/**
 * Loads several sources together, so a Rollout in one file may use an AnalysisTemplate
 * from another (the seed's rollout.yaml + analysis-template.yaml). Throws ConfigError with
 * every problem found.
 */
export function loadPolicyCatalog(sources: readonly PolicySource[], options: CatalogOptions = {}): PolicyCatalog {
  const problems: Problem[] = [];
  const stepLists: Located<StepList>[] = [];
  const templates = new Map<string, Located<AnalysisTemplate>>();
  const all = [...sources];
  const defines = (name: string) => stepLists.some((s) => s.value.name === name);

  const read = (entry: PolicySource) => {
    const docs = readPolicyDocuments(entry.text, entry.source, problems);
    if (entry.name !== undefined) {
      if (docs.stepLists.length !== 1) {
        problems.push({ source: entry.source, path: '', message: `expected exactly one Policy or Rollout to name "${entry.name}", found ${docs.stepLists.length}` });
      } else {
        docs.stepLists[0]!.value.name = entry.name;
      }
    }
    stepLists.push(...docs.stepLists);
    for (const t of docs.templates) {
      const name = t.value.metadata.name;
      const previous = templates.get(name);
      if (previous) problems.push({ source: t.source, path: joinPath(t.path, 'metadata.name'), message: `AnalysisTemplate "${name}" is also defined in ${previous.source}` });
      else templates.set(name, t);
    }
  };
  all.forEach(read);
  if (options.includeDefault !== false) {
    for (const entry of builtInPolicyEntries()) {
      const name = readPolicyDocuments(entry.text, entry.source, []).stepLists[0]?.value.name;
      // A built-in's templates are its own: a user's file defining the same name replaces the whole policy.
      if (name !== undefined && !defines(name)) read(entry);
    }
  }

  const policies = new Map<string, Policy>();
  for (const list of stepLists) {
    const name = list.value.name;
    const clash = policies.get(name);
    if (clash) {
      problems.push({ source: list.source, path: list.path, message: `policy "${name}" is also defined in ${clash.source}` });
      continue;
    }
    const policy = resolvePolicy(list, templates, problems);
    if (policy) policies.set(name, policy);
  }
  if (problems.length) throw toConfigError(problems);
  return { policies, templates: new Map([...templates].map(([k, v]) => [k, v.value])) };
}

/** One text (possibly multi-document), without the built-in default. */
export function loadPolicyText(text: string, source: string): PolicyCatalog {
  return loadPolicyCatalog([{ source, text }], { includeDefault: false });
}

export function loadPolicyFiles(files: readonly string[], options?: CatalogOptions): PolicyCatalog {
  return loadPolicyCatalog(
    files.map((file) => {
      try {
        return { source: file, text: readFileSync(file, 'utf8') };
      } catch (err) {
        throw new ConfigError(file, [{ path: '', message: `cannot read file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
      }
    }),
    options,
  );
}

function resolvePolicy(list: Located<StepList>, templates: Map<string, Located<AnalysisTemplate>>, problems: Problem[]): Policy | undefined {
  const before = problems.length;
  // A policy's own templates shadow standalone ones of the same name.
  const visible = new Map(templates);
  for (const t of list.value.localTemplates) visible.set(t.value.metadata.name, t);
  const steps = list.value.steps.map((step, i) => resolveStep(step, joinPath(list.path, `[${i}]`), list.source, visible, problems));
  let background = list.value.background && resolveBackground(list.value.background, list.value.steps.length, visible, problems);
  const guardrail = list.value.guardrail && resolveGuardrail(list.value.guardrail);
  if (guardrail) {
    if (list.value.background && background?.analysis.metrics.some((m) => m.name === GUARDRAIL_METRIC)) {
      problems.push({ source: list.value.background.source, path: list.value.background.path, message: `metric name "${GUARDRAIL_METRIC}" is taken by the guardrail's own background metric; rename the template's metric` });
    }
    background = withGuardrailMetric(background, guardrail);
  }
  if (problems.length > before) return undefined;
  return { name: list.value.name, steps: steps as PolicyStep[], source: list.source, ...(background ? { background } : {}), ...(guardrail ? { guardrail } : {}) };
}

/** The guardrail's trip check joins the background analysis (one is started at step 0 if the policy has none). */
function withGuardrailMetric(background: BackgroundAnalysis | undefined, guardrail: NonNullable<Policy['guardrail']>): BackgroundAnalysis {
  const { metric, arg } = guardrailMetric(guardrail);
  if (!background) return { analysis: { templateNames: [GUARDRAIL_METRIC], metrics: [metric], args: [arg] }, startingStep: 0 };
  const { analysis } = background;
  return { ...background, analysis: { ...analysis, templateNames: [...analysis.templateNames, GUARDRAIL_METRIC], metrics: [...analysis.metrics, metric], args: [...analysis.args, arg] } };
}

function resolveStep(step: Step, path: string, source: string, templates: Map<string, Located<AnalysisTemplate>>, problems: Problem[]): PolicyStep | undefined {
  if (step.setWeight !== undefined) return { kind: 'setWeight', weight: step.setWeight };
  if (step.pause !== undefined) {
    const d = step.pause.duration;
    return d === undefined ? { kind: 'pause' } : { kind: 'pause', duration: d, durationMs: durationMs(d) };
  }
  if (step.shadow !== undefined) return { kind: 'shadow', duration: step.shadow.duration, durationMs: durationMs(step.shadow.duration), percent: step.shadow.percent };
  const analysis = resolveAnalysis(step.analysis!, joinPath(path, 'analysis'), source, templates, problems, 'step');
  return { kind: 'analysis', analysis };
}

/** Background analysis: the same templates and args as a step's, plus where it starts. */
function resolveBackground(spec: Located<BackgroundAnalysisSpec>, stepCount: number, templates: Map<string, Located<AnalysisTemplate>>, problems: Problem[]): BackgroundAnalysis {
  const startingStep = spec.value.startingStep ?? 0;
  if (startingStep >= stepCount) {
    problems.push({ source: spec.source, path: joinPath(spec.path, 'startingStep'), message: `must be less than the number of steps (${stepCount}); steps are counted from 0` });
  }
  return { analysis: resolveAnalysis(spec.value, spec.path, spec.source, templates, problems, 'background'), startingStep };
}

function resolveAnalysis(
  analysis: Pick<AnalysisStep, 'templates' | 'args'>,
  path: string,
  source: string,
  templates: Map<string, Located<AnalysisTemplate>>,
  problems: Problem[],
  kind: 'step' | 'background',
): ResolvedAnalysis {
  const problem = (sub: string, message: string) => problems.push({ source, path: joinPath(path, sub), message });
  const metrics: Metric[] = [];
  const templateArgs: { name: string; value?: string }[] = [];
  analysis.templates.forEach((ref, j) => {
    const found = templates.get(ref.templateName);
    if (!found) {
      problem(`templates[${j}].templateName`, `AnalysisTemplate "${ref.templateName}" not found${templates.size ? ` (known: ${[...templates.keys()].join(', ')})` : ''}`);
      return;
    }
    for (const m of found.value.spec.metrics) {
      if (metrics.some((x) => x.name === m.name)) problem(`templates[${j}]`, `metric "${m.name}" appears in more than one of this ${kind === 'step' ? "step's" : "analysis's"} templates`);
      metrics.push(m);
    }
    templateArgs.push(...(found.value.spec.args ?? []));
  });
  const args = mergeArgs(templateArgs, analysis.args ?? []);
  for (const metric of metrics) checkMetric(metric, args, kind, (message) => problem('', `metric ${metric.name}: ${message}`));
  return { templateNames: analysis.templates.map((t) => t.templateName), metrics, args };
}

/** Checks that depend on where the metric runs: args resolve, the baseline differs, a step's metric ends. */
function checkMetric(metric: Metric, args: ArgSpec[], kind: 'step' | 'background', report: (message: string) => void): void {
  const byName = new Map(args.map((a) => [a.name, a]));
  const compared = metric.compare ? countQueries(metric.compare, metric.provider.prometheus.query) : undefined;
  const countTexts = compared === undefined || 'error' in compared ? [] : compared.kind === 'proportions' ? [compared.events, compared.trials] : [compared.buckets];
  const queries = [metric.provider.prometheus.query, metric.samplesQuery ?? '', ...countTexts];
  for (const name of new Set(queries.flatMap(referencedArgs))) {
    const arg = byName.get(name);
    if (!arg) report(`{{args.${name}}} is not an argument of the template or the step`);
    else if (arg.value === undefined && arg.fromHash === undefined) report(`{{args.${name}}} is declared but given no value`);
  }
  const usesStable = [metric.successCondition, metric.failureCondition].some((c) => c !== undefined && compileCondition(c).variables.has('stable'));
  if (usesStable) {
    const swaps = referencedArgs(metric.provider.prometheus.query).some((name) => byName.get(name)?.fromHash === 'Latest');
    if (!swaps) report('the condition compares with "stable", but the query uses no argument taken from the canary hash (such as {{args.canary-hash}}), so the stable query would be the same query');
  }
  for (const text of countTexts) {
    if (!referencedArgs(text).some((name) => byName.get(name)?.fromHash === 'Latest')) {
      report(`compare: the count query ${JSON.stringify(text.replace(/\s+/g, ' ').trim())} uses no argument taken from the canary hash (such as {{args.canary-hash}}), so the stable arm would count the same series`);
    }
  }
  // Background metrics may run until the rollout ends (Argo's usual shape); a step's must finish.
  if (kind === 'step' && metric.interval !== undefined && metric.count === undefined) {
    report('has an interval but no count, so it would run forever; an analysis step needs a count');
  }
}

function toConfigError(problems: Problem[]): ConfigError {
  const sources = [...new Set(problems.map((p) => p.source))];
  if (sources.length === 1) return new ConfigError(sources[0]!, problems.map(({ path, message }) => ({ path, message })));
  return new ConfigError(
    sources.join(', '),
    problems.map(({ source, path, message }) => ({ path: path ? `${source}: ${path}` : source, message })),
  );
}

/** The built-in `default` policy, loaded and checked like any other. */
export function loadDefaultPolicy(): Policy {
  return loadPolicyCatalog([defaultPolicyEntry()], { includeDefault: false }).policies.get('default')!;
}

/** Every built-in policy by name (`default`, `shadow-canary`), loaded and checked like any other. */
export function loadBuiltInPolicies(): Map<string, Policy> {
  return loadPolicyCatalog(builtInPolicyEntries(), { includeDefault: false }).policies;
}

/** The built-in `shadow-canary` policy: a shadow stage, then the default policy. */
export function loadShadowPolicy(): Policy {
  return loadBuiltInPolicies().get(SHADOW_POLICY_NAME)!;
}
