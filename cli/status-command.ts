import { AppsV1Api, Watch, type V1Deployment } from '@kubernetes/client-node';
import { Command, Option } from 'commander';
import { apiErrorText } from '../controller/kube/api-errors.js';
import { loadKubeConfig, namespaceFor } from './kubeconfig.js';
import { localViews } from './local-rollouts.js';
import { localStateDir, MODE_HELP, stateDirOption } from './rollout-mode.js';
import { isManaged, renderTable, viewOf, type RolloutView } from './rollout-view.js';

interface StatusOptions {
  stateDir?: string;
  kubeconfig?: string;
  namespace?: string;
  allNamespaces?: boolean;
  watch?: boolean;
  json?: boolean;
}

export function statusCommand(): Command {
  return new Command('status')
    .description(`Show the rollouts: phase, step, canary weight, last analysis, message. In a cluster: the Deployments annotated with fledge.dev/virtual-service; locally: the rollouts of \`fledge controller --local\`. ${MODE_HELP}`)
    .argument('[rollout]', 'show only this rollout (in a cluster: the candidate Deployment)')
    .addOption(stateDirOption())
    .addOption(new Option('--kubeconfig <file>', 'kubeconfig file (default as kubectl: $KUBECONFIG, ~/.kube/config, in-cluster)'))
    .addOption(new Option('-n, --namespace <ns>', 'namespace (default: the context\'s, else "default")'))
    .addOption(new Option('-A, --all-namespaces', 'rollouts in every namespace'))
    .addOption(new Option('-w, --watch', 'keep running and print again on every change'))
    .addOption(new Option('--json', 'machine-readable output (with --watch: one JSON document per line)'))
    .action(async (only: string | undefined, opts: StatusOptions) => {
      const stateDir = localStateDir(opts);
      if (stateDir) return localStatus(stateDir, only, opts);
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

/** Local mode: the status files; with --watch, printed again whenever one changes. */
async function localStatus(stateDir: string, only: string | undefined, opts: StatusOptions): Promise<void> {
  const print = (views: RolloutView[]) => {
    if (opts.json) process.stdout.write(`${JSON.stringify(views, null, opts.watch ? undefined : 2)}\n`);
    else process.stdout.write(`${views.length ? renderTable(views, false) : `no rollouts in ${stateDir}`}\n`);
  };
  let views = localViews(stateDir, only);
  print(views);
  if (!opts.watch) return;
  let last = JSON.stringify(views);
  // The files are small and few: a short poll sees every change without platform-specific watches.
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    views = localViews(stateDir, only);
    const now = JSON.stringify(views);
    if (now === last) continue;
    last = now;
    if (!opts.json) process.stdout.write('\n');
    print(views);
  }
}
