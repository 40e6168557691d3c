import { Command, Option } from 'commander';

interface ValidateOptions {
  kind: 'auto' | 'policy' | 'rollouts' | 'flags' | 'stack' | 'extproc' | 'routing' | 'mesh';
  json?: boolean;
}

const HELP = `
Kinds (auto-detected from the content unless --kind is given):
  policy    fledge Policy, Argo Rollout, AnalysisTemplate documents (YAML, any mix);
            steps, templates, arguments and success/failure conditions. Policy files
            named together are checked together, so a Rollout may use a template from
            another of the files (as the controller loads them).
  rollouts  local mode's rollouts file: entries, unique names, its policy files, and
            that each rollout's policy exists (the built-in "default" always does)
  flags     flagd flag file (strict flagd schema, targeting rules)
  stack     \`fledge up\` stack file: ports, services, versions, stable, its flag file.
            Named with rollouts files, also checks that every metric of each rollout's
            policy has an evaluator in the stack (golden probes, golden set, judge,
            opted-in self-reports), as \`fledge up\` and the local controller do at start
  extproc   extproc config file (grpc, admin, routing, flags, quality)
  routing   extproc routing-state file (services, stable/canary, weights)
  mesh      Istio resources (documents with apiVersion *.istio.io/*, or a kubectl List
            of them), checked together: warns when a Sidecar scopes egress so that
            the ext_proc cluster is invisible to workloads that get the ext_proc filter
            (against the EnvoyFilters named, else fledge's fledge-extproc-sidecar-outbound)

Output: "ok <file> (<kind>: <summary>)" per valid file, then a "warning <file>: <path>:
<reason>" line per warning (warnings do not change the exit status); for an invalid one, a line
"invalid <file> (<kind>: N problems)" and one "<file>: <path>: <reason>" per problem.
Exit status: 0 all valid, 1 any invalid, 2 usage error (e.g. a file that does not exist).

Examples:
  $ fledge validate test/fixtures/seed/rollout.yaml test/fixtures/seed/analysis-template.yaml
  $ fledge validate examples/flags.json
  $ fledge validate --kind stack stack.yaml
  $ kubectl get sidecars -A -o yaml > sidecars.yaml
  $ fledge validate manifests/envoyfilter.yaml sidecars.yaml
  $ fledge validate examples/real-model/stack.yaml examples/real-model/rollouts.yaml
  $ fledge validate --json policies/*.yaml | jq '.files[] | select(.valid | not)'
`;

export function validateCommand(): Command {
  return new Command('validate')
    .description('Check fledge files (policies, rollouts, flags, stack, extproc config, routing state, Istio resources) and report every problem with file, path and reason.')
    .argument('<files...>', 'files to check (YAML or JSON)')
    .addOption(new Option('--kind <kind>', 'what the files are').choices(['auto', 'policy', 'rollouts', 'flags', 'stack', 'extproc', 'routing', 'mesh']).default('auto'))
    .option('--json', 'print {"files": [{"file", "kind", "valid", "problems": [{"path", "message"}], "warnings" (when any): [{"path", "message"}]}]}')
    .addHelpText('after', HELP)
    .showHelpAfterError("(see 'fledge validate --help')")
    // Usage errors (unknown option, bad --kind, no file) exit 2, as a missing file does.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
    .action(async (files: string[], opts: ValidateOptions) => {
      // Loaded here, not at the top: the validators pull in zod schemas, flagd-core and the policy loader.
      const { readInputs, validateInputs, formatJson, formatText, UnreadableFileError } = await import('./validate.js');
      let inputs;
      try {
        inputs = readInputs([...new Set(files)]);
      } catch (err) {
        if (!(err instanceof UnreadableFileError)) throw err;
        process.stderr.write(`fledge validate: ${err.message}\n`);
        process.exit(2);
      }
      const results = validateInputs(inputs, opts.kind);
      process.stdout.write(opts.json ? formatJson(results) : formatText(results));
      process.exitCode = results.every((r) => r.valid) ? 0 : 1;
    });
}
