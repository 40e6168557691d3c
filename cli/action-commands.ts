import { AppsV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Command, Option } from 'commander';
import { apiErrorText, isNotFound } from '../controller/kube/api-errors.js';
import { ANNOTATION } from '../controller/kube/rollout-status.js';
import type { UserAction } from '../controller/engine/rollout-machine.js';
import { loadKubeConfig, namespaceFor } from './kubeconfig.js';
import { requestLocalAction } from './local-rollouts.js';
import { localStateDir, MODE_HELP, stateDirOption } from './rollout-mode.js';

const DESCRIPTIONS: Record<UserAction, string> = {
  promote: 'Skip the current step (a pause, an analysis, or a review after a cost alert) and continue the rollout.',
  abort: 'Send all traffic back to the stable version now (canary weight 0); the rollout ends RolledBack.',
  pause: 'Pause the rollout; the current step\'s clock stops until resumed.',
  resume: 'Resume a paused rollout (re-runs an inconclusive or errored analysis).',
  retry: 'Start a RolledBack, Failed or Invalid rollout again from the first step.',
};

interface ActionOptions {
  stateDir?: string;
  kubeconfig?: string;
  namespace?: string;
}

/** One command per action; each sets fledge.dev/action, which the controller consumes and removes. */
export function actionCommands(): Command[] {
  return (Object.keys(DESCRIPTIONS) as UserAction[]).map((action) =>
    new Command(action)
      .description(
        `${DESCRIPTIONS[action]} In a cluster: sets ${ANNOTATION.action}=${action} on the candidate Deployment; locally: writes <state-dir>/actions/<rollout>. ` +
          `The controller acts on it and removes it (an action left while the controller is down is taken when it starts). ${MODE_HELP}`,
      )
      .argument('<rollout>', 'the rollout: in a cluster the candidate Deployment (annotated with fledge.dev/virtual-service), locally its name in the rollouts file')
      .addOption(stateDirOption())
      .addOption(new Option('--kubeconfig <file>', 'kubeconfig file (default as kubectl: $KUBECONFIG, ~/.kube/config, in-cluster)'))
      .addOption(new Option('-n, --namespace <ns>', 'namespace (default: the context\'s, else "default")'))
      .action(async (name: string, opts: ActionOptions) => {
        const stateDir = localStateDir(opts);
        if (stateDir) {
          const dir = requestLocalAction(stateDir, name, action);
          process.stdout.write(`${action} requested for ${name} (in ${dir})\n`);
          return;
        }
        const kc = loadKubeConfig(opts.kubeconfig);
        const namespace = namespaceFor(kc, opts.namespace);
        await requestAction(kc.makeApiClient(AppsV1Api), namespace, name, action);
        process.stdout.write(`${action} requested for ${namespace}/${name}\n`);
      }),
  );
}

export async function requestAction(apps: AppsV1Api, namespace: string, name: string, action: UserAction): Promise<void> {
  let deployment;
  try {
    deployment = await apps.readNamespacedDeployment({ namespace, name });
  } catch (err) {
    if (isNotFound(err)) throw new Error(`Deployment ${namespace}/${name} not found`);
    throw new Error(`reading Deployment ${namespace}/${name} failed: ${apiErrorText(err)}`);
  }
  if (!deployment.metadata?.annotations?.[ANNOTATION.virtualService]) throw new Error(`Deployment ${namespace}/${name} is not managed by fledge (no ${ANNOTATION.virtualService} annotation)`);
  try {
    await apps.patchNamespacedDeployment({ namespace, name, body: { metadata: { annotations: { [ANNOTATION.action]: action } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  } catch (err) {
    throw new Error(`setting ${ANNOTATION.action}=${action} on Deployment ${namespace}/${name} failed: ${apiErrorText(err)}`);
  }
}
