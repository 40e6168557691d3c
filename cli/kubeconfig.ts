/** Kubernetes client configuration the way kubectl finds it. */
import { KubeConfig } from '@kubernetes/client-node';

/**
 * --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else the in-cluster ServiceAccount
 * (client-node's loadFromDefault covers the last three in that order).
 */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (err) {
    throw new Error(`cannot load kubeconfig${file ? ` ${file}` : ''}: ${(err as Error).message}`);
  }
  if (!kc.getCurrentCluster()) throw new Error(`no Kubernetes cluster configured (looked at ${file ?? 'KUBECONFIG, ~/.kube/config and the in-cluster ServiceAccount'})`);
  return kc;
}

/** -n, else the current context's namespace, else "default" (kubectl's rule). */
export function namespaceFor(kc: KubeConfig, flag?: string): string {
  if (flag) return flag;
  const context = kc.getContextObject(kc.getCurrentContext());
  return context?.namespace || 'default';
}
