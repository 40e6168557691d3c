import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { loadStackConfig } from '../../local/stack-config.js';

interface ShadowReportOptions {
  rolloutHash?: string;
  redis?: string;
  stack?: string;
  json?: boolean;
  html?: string;
}

/** The local stack's Redis when nothing else is named: `fledge up`'s default port. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const HELP = `
Reads the pairs extproc logged during a shadow step (Redis, per service and candidate
rollout hash) and compares the candidate's answers with the stable's, side by side with
the noise floor (the stable against a second answer of its own). See docs/shadow.md.

Redis: --redis URL, else the Redis of the stack file given with --stack (ports.redis),
else ${DEFAULT_REDIS_URL} (\`fledge up\`'s default).

Examples:
  $ fledge shadow-report chat
  $ fledge shadow-report chat --rollout-hash 7c9d8f6b54 --html shadow.html
  $ fledge shadow-report chat --redis redis://redis.fledge-system:6379 --json | jq .verdict
`;

export function shadowReportCommand(): Command {
  return new Command('shadow-report')
    .description("Compare a shadow candidate's answers with the stable's: quantiles and a two-sample test per feature, flip rates with 95% intervals, the worst pairs, a verdict; --html writes a page with plots.")
    .argument('<service>', 'the service (as in the routing config and the metrics\' service label)')
    .addOption(new Option('--rollout-hash <hash>', "the candidate's rollout hash (default: the rollout with the newest pair; the others are listed)"))
    .addOption(new Option('--redis <url>', `Redis holding the pair log (default: the --stack file's, else ${DEFAULT_REDIS_URL})`))
    .addOption(new Option('--stack <file>', '`fledge up` stack file whose Redis port to use'))
    .addOption(new Option('--json', 'print the report as JSON'))
    .addOption(new Option('--html <file>', 'also write the report as a self-contained HTML page with plots'))
    .addHelpText('after', HELP)
    .action(async (service: string, opts: ShadowReportOptions) => {
      const redisUrl = opts.redis ?? (opts.stack ? `redis://127.0.0.1:${loadStackConfig(opts.stack).ports.redis}` : DEFAULT_REDIS_URL);
      const { loadShadowPairs } = await import('./load.js');
      const { buildShadowReport } = await import('./report.js');
      const loaded = await loadShadowPairs(redisUrl, service, opts.rolloutHash);
      const report = buildShadowReport(loaded.records, { service, rolloutHash: loaded.rolloutHash, unreadable: loaded.unreadable, otherRollouts: loaded.otherRollouts, preferences: loaded.preferences, preferencesUnreadable: loaded.preferencesUnreadable });
      if (opts.html) {
        const { renderHtml } = await import('./html.js');
        const file = resolve(opts.html);
        try {
          writeFileSync(file, renderHtml(report, loaded.records));
        } catch (err) {
          throw new Error(`cannot write the HTML report to ${file}: ${(err as Error).message}`);
        }
        if (!opts.json) process.stderr.write(`wrote ${file}\n`);
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        const { renderText } = await import('./text.js');
        process.stdout.write(renderText(report));
      }
    });
}
