/**
 * Reads policy YAML (one or many documents) into validated pieces: step lists (from a
 * fledge Policy or an Argo Rollout) and AnalysisTemplates (standalone or inside a Policy).
 * Every problem names the source, the path inside it, and the reason.
 */
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import { formatPath } from '../../common/config-error.js';
import { compileCondition, ConditionSyntaxError } from '../analysis/condition.js';
import {
  analysisTemplateSchema,
  argoRolloutSchema,
  DOCUMENT_KINDS,
  fledgePolicySchema,
  type AnalysisTemplate,
  type BackgroundAnalysisSpec,
  type GuardrailSpec,
  type Step,
} from './schema.js';

export interface Problem {
  source: string;
  path: string;
  message: string;
}

export interface Located<T> {
  value: T;
  source: string;
  /** Path of the value inside its source, e.g. "documents[1].spec" or "spec.analysisTemplates[0]". */
  path: string;
}

export interface StepList {
  name: string;
  steps: Step[];
  kind: 'Policy' | 'Rollout';
  /** Background analysis (Argo's canary.analysis), if any, and where it is. */
  background?: Located<BackgroundAnalysisSpec>;
  /** A Policy's own analysisTemplates: seen only by that policy, ahead of standalone ones. */
  localTemplates: Located<AnalysisTemplate>[];
  /** A Policy's data-plane guardrail (Argo Rollouts have none). */
  guardrail?: GuardrailSpec;
}

export interface PolicyDocuments {
  stepLists: Located<StepList>[];
  /** Standalone AnalysisTemplate documents: shared by every policy in the catalog. */
  templates: Located<AnalysisTemplate>[];
}

/** Never throws: problems are collected so one load reports all of them. */
export function readPolicyDocuments(text: string, source: string, problems: Problem[]): PolicyDocuments {
  const out: PolicyDocuments = { stepLists: [], templates: [] };
  let docs;
  try {
    docs = parseAllDocuments(text, { prettyErrors: true });
  } catch (err) {
    problems.push({ source, path: '', message: `not valid YAML: ${(err as Error).message}` });
    return out;
  }
  if (!Array.isArray(docs)) docs = [docs];
  const multi = docs.length > 1;
  docs.forEach((doc, i) => {
    const prefix = multi ? `documents[${i}]` : '';
    const at = (sub: string) => joinPath(prefix, sub);
    if (doc.errors.length) {
      problems.push({ source, path: prefix, message: `not valid YAML: ${doc.errors[0]!.message}` });
      return;
    }
    const raw: unknown = doc.toJS();
    if (raw === null || raw === undefined) return; // empty document (e.g. a trailing ---)
    const kind = typeof raw === 'object' && !Array.isArray(raw) ? (raw as { kind?: unknown }).kind : undefined;
    switch (kind) {
      case 'Policy': {
        const policy = validate(fledgePolicySchema, raw, source, prefix, problems);
        if (!policy) return;
        const localTemplates: Located<AnalysisTemplate>[] = [];
        policy.spec.analysisTemplates?.forEach((t, j) => addTemplate(localTemplates, t, source, at(`spec.analysisTemplates[${j}]`), problems));
        const background = policy.spec.analysis ? { background: { value: policy.spec.analysis, source, path: at('spec.analysis') } } : {};
        const guardrail = policy.spec.guardrail ? { guardrail: policy.spec.guardrail } : {};
        out.stepLists.push({ value: { name: policy.metadata.name, steps: policy.spec.steps, kind: 'Policy', localTemplates, ...background, ...guardrail }, source, path: at('spec.steps') });
        return;
      }
      case 'Rollout': {
        const rollout = validate(argoRolloutSchema, raw, source, prefix, problems);
        if (!rollout) return;
        const canary = rollout.spec.strategy.canary;
        const background = canary.analysis ? { background: { value: canary.analysis, source, path: at('spec.strategy.canary.analysis') } } : {};
        out.stepLists.push({ value: { name: rollout.metadata.name, steps: canary.steps, kind: 'Rollout', localTemplates: [], ...background }, source, path: at('spec.strategy.canary.steps') });
        return;
      }
      case 'AnalysisTemplate':
      case 'ClusterAnalysisTemplate': {
        const template = validate(analysisTemplateSchema, raw, source, prefix, problems);
        if (template) addTemplate(out.templates, template, source, prefix, problems);
        return;
      }
      default:
        problems.push({ source, path: at('kind'), message: `expected kind ${DOCUMENT_KINDS.join(', ')}; got ${JSON.stringify(kind ?? null)}` });
    }
  });
  return out;
}

/** Template checks that need no policy: conditions compile, metric names are unique. */
function addTemplate(into: Located<AnalysisTemplate>[], template: AnalysisTemplate, source: string, path: string, problems: Problem[]): void {
  let ok = true;
  const seen = new Set<string>();
  template.spec.metrics.forEach((metric, i) => {
    const metricPath = joinPath(path, `spec.metrics[${i}]`);
    if (seen.has(metric.name)) {
      problems.push({ source, path: joinPath(metricPath, 'name'), message: `metric name "${metric.name}" is used twice in template ${template.metadata.name}` });
      ok = false;
    }
    seen.add(metric.name);
    for (const field of ['successCondition', 'failureCondition'] as const) {
      const condition = metric[field];
      if (condition === undefined) continue;
      try {
        compileCondition(condition);
      } catch (err) {
        if (!(err instanceof ConditionSyntaxError)) throw err;
        problems.push({ source, path: joinPath(metricPath, field), message: `metric ${metric.name}: ${err.message}` });
        ok = false;
      }
    }
  });
  const name = template.metadata.name;
  const twin = into.find((t) => t.value.metadata.name === name);
  if (twin) {
    problems.push({ source, path: joinPath(path, 'metadata.name'), message: `AnalysisTemplate "${name}" is also defined at ${twin.source}${twin.path ? ` ${twin.path}` : ''}` });
    ok = false;
  }
  if (ok) into.push({ value: template, source, path });
}

function validate<S extends z.ZodType>(schema: S, raw: unknown, source: string, prefix: string, problems: Problem[]): z.output<S> | undefined {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  for (const issue of result.error.issues) problems.push({ source, path: joinPath(prefix, formatPath(issue.path)), message: issue.message });
  return undefined;
}

export function joinPath(prefix: string, sub: string): string {
  if (!prefix) return sub;
  if (!sub) return prefix;
  return sub.startsWith('[') ? `${prefix}${sub}` : `${prefix}.${sub}`;
}
