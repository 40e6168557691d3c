/**
 * Finds a rollout's policy: ConfigMap `fledge-policies` in the Deployment's namespace, key =
 * policy name, value = YAML (a fledge Policy or an Argo Rollout, optionally with its
 * AnalysisTemplates as further documents). Keys holding only AnalysisTemplates are shared
 * by every policy of the ConfigMap. Without the ConfigMap or the key, `default` is built in.
 */
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { ConfigError } from '../../common/config-error.js';
import { readPolicyDocuments } from '../policy/documents.js';
import { loadBuiltInPolicies, loadPolicyCatalog, type PolicySource } from '../policy/load.js';
import type { Policy } from '../policy/policy.js';
import { apiErrorText, isNotFound } from './api-errors.js';

export const POLICY_CONFIGMAP = 'fledge-policies';

export type PolicyLookup = { policy: Policy } | { problem: string };

export class PolicySourceReader {
  private readonly core: CoreV1Api;
  private readonly builtIn = loadBuiltInPolicies();
  // Parsing and checking a policy costs more than reading it: reuse it while the ConfigMap is unchanged.
  private readonly parsed = new Map<string, PolicyLookup>();
  // Many rollouts in one namespace wake up together; one read serves them for a moment.
  private readonly recent = new Map<string, { at: number; configMap: Promise<V1ConfigMap | undefined> }>();

  constructor(kubeConfig: KubeConfig) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async lookup(namespace: string, name: string): Promise<PolicyLookup> {
    const configMap = await this.read(namespace);
    const cacheKey = `${namespace}\u0000${configMap?.metadata?.uid ?? ''}\u0000${configMap?.metadata?.resourceVersion ?? ''}\u0000${name}`;
    const cached = this.parsed.get(cacheKey);
    if (cached) return cached;
    const lookup = policyFromConfigMap(configMap?.data ?? {}, `ConfigMap ${namespace}/${POLICY_CONFIGMAP}`, name, this.builtIn);
    if (this.parsed.size > 1000) this.parsed.clear();
    this.parsed.set(cacheKey, lookup);
    return lookup;
  }

  private read(namespace: string): Promise<V1ConfigMap | undefined> {
    const now = Date.now();
    const recent = this.recent.get(namespace);
    if (recent && now - recent.at < POLICY_READ_REUSE_MS) return recent.configMap;
    const configMap = this.core.readNamespacedConfigMap({ name: POLICY_CONFIGMAP, namespace }).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      this.recent.delete(namespace);
      throw new Error(`reading ConfigMap ${namespace}/${POLICY_CONFIGMAP} failed: ${apiErrorText(err)}`);
    });
    this.recent.set(namespace, { at: now, configMap });
    return configMap;
  }
}

/** Pure: the named policy from the ConfigMap's data, a built-in one (default, shadow-canary) the ConfigMap does not redefine, or a message naming what is wrong. */
export function policyFromConfigMap(data: Record<string, string>, where: string, name: string, builtIn: ReadonlyMap<string, Policy>): PolicyLookup {
  const text = data[name];
  if (text === undefined) {
    const known = builtIn.get(name);
    if (known) return { policy: known };
    return { problem: `policy "${name}" not found: ${where} has no key "${name}"${Object.keys(data).length ? ` (keys: ${Object.keys(data).join(', ')})` : ''}` };
  }
  const sources: PolicySource[] = [{ source: `${where} key "${name}"`, text, name }];
  for (const [key, other] of Object.entries(data)) {
    if (key !== name && definesOnlyTemplates(other, key)) sources.push({ source: `${where} key "${key}"`, text: other });
  }
  try {
    const policy = loadPolicyCatalog(sources, { includeDefault: false }).policies.get(name);
    return policy ? { policy } : { problem: `policy "${name}" not found in ${where}` };
  } catch (err) {
    if (err instanceof ConfigError) return { problem: `malformed policy: ${err.message}` };
    throw err;
  }
}

export const POLICY_READ_REUSE_MS = 2_000;

function definesOnlyTemplates(text: string, key: string): boolean {
  const docs = readPolicyDocuments(text, key, []);
  return docs.stepLists.length === 0 && docs.templates.length > 0;
}
