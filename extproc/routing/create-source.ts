import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import type { RoutingConfig } from '../config.js';
import { FileRoutingSource } from './file-source.js';
import type { RoutingStateSource } from './state.js';
import { VirtualServiceRoutingSource } from './virtualservice-source.js';

/** The routing-state source the config asks for. */
export function createRoutingSource(config: RoutingConfig, logger: Logger): RoutingStateSource {
  switch (config.source) {
    case 'file':
      return new FileRoutingSource(config.file, logger);
    case 'virtualservice':
      return new VirtualServiceRoutingSource(
        { kubeConfig: loadKubeConfig(config.kubeconfig), namespace: config.namespace, syncTimeoutMs: config.syncTimeoutSeconds * 1000 },
        logger,
      );
  }
}

function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (err) {
    throw new Error(`cannot load kubeconfig ${file ?? '(default: $KUBECONFIG, ~/.kube/config or in-cluster)'}: ${(err as Error).message}`, { cause: err });
  }
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${file ?? '(default)'} has no current cluster`);
  return kc;
}
