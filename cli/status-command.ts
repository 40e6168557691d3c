import { AppsV1Api, Watch, type V1Deployment } from '@kubernetes/client-node';
import { Command, Option } from 'commander';
import { apiErrorText } from '../controller/kube/api-errors.js';
import { loadKubeConfig, namespaceFor } from './kubeconfig.js';
import { isManaged, renderTable, viewOf } from './rollout-view.js';

interface StatusOptions {
  kubeconfig?: string;
  namespace?: string;
  allNamespaces?: boolean;
  watch?: boolean;
  json?: boolean;
}

export function statusCommand(): Command {
  return new Command('status')
    .description('Show the rollouts (Deployments annotated with fledge.dev/virtual-service): phase, step, canary weight, last analysis, message.')
    .argument('[deployment]', 'show only this Deployment')
    .addOption(new Option('--kubeconfig <file>', 'kubeconfig file (default as kubectl: $KUBECONFIG, ~/.kube/config, in-cluster)'))
    .addOption(new Option('-n, --namespace <ns>', 'namespace (default: the context\'s, else "default")'))
    .addOption(new Option('-A, --all-namespaces', 'rollouts in every namespace'))
    .addOption(new Option('-w, --watch', 'keep running and print again on every change'))
    .addOption(new Option('--json', 'machine-readable output (with --watch: one JSON document per line)'))
    .action(async (only: string | undefined, opts: StatusOptions) => {
      const kc = loadKubeConfig(opts.kubeconfig);
      const namespace = opts.allNamespaces ? undefined : namespaceFor(kc, opts.namespace);
      const apps = kc.makeApiClient(AppsV1Api);
      const select = (items: V1Deployment[]) => items.filter(isManaged).filter((d) => !only || d.metadata?.name === only).map(viewOf);
      const print = (items: V1Deployment[]) => {
        const views = select(items);
        if (opts.json) process.stdout.write(`${JSON.stringify(views, null, opts.watch ? undefined : 2)}\n`);
        else process.stdout.write(`${views.length ? renderTable(views, namespace === undefined) : `no rollouts in ${namespace === undefined ? 'any namespace' : `namespace ${namespace}`}`}\n`);
      };
      const listAll = async () => {
        try {
          return (namespace ? await apps.listNamespacedDeployment({ namespace }) : await apps.listDeploymentForAllNamespaces()).items;
        } catch (err) {
          throw new Error(`listing Deployments${namespace ? ` in ${namespace}` : ''} failed: ${apiErrorText(err)}`);
        }
      };
      const items = await listAll();
      if (only && !items.some((d) => d.metadata?.name === only)) throw new Error(`Deployment ${namespace ?? '*'}/${only} not found`);
      print(items);
      if (!opts.watch) return;

      const byKey = new Map(items.map((d) => [`${d.metadata?.namespace}/${d.metadata?.name}`, d]));
      const path = namespace ? `/apis/apps/v1/namespaces/${namespace}/deployments` : '/apis/apps/v1/deployments';
      let last = JSON.stringify(select([...byKey.values()]));
      await new Promise<void>((resolve, reject) => {
        new Watch(kc)
          .watch(
            path,
            {},
            (type: string, d: V1Deployment) => {
              const key = `${d.metadata?.namespace}/${d.metadata?.name}`;
              if (type === 'DELETED') byKey.delete(key);
              else byKey.set(key, d);
              const now = JSON.stringify(select([...byKey.values()]));
              if (now === last) return;
              last = now;
              if (!opts.json) process.stdout.write('\n');
              print([...byKey.values()]);
            },
            (err: unknown) => (err ? reject(new Error(`watching Deployments failed: ${apiErrorText(err)}`)) : resolve()),
          )
          .catch(reject);
      });
    });
}
