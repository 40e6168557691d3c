#!/usr/bin/env node
import { Command } from 'commander';
import { extprocCommand } from './extproc-command.js';
import { judgeCommand } from './judge-command.js';
import { modelCommand } from './model-command.js';
import { probeCommand } from './probe-command.js';
import { simCommand } from '../sim/command.js';
import { demoCommand } from './demo-command.js';
import { upCommand } from './up-command.js';
import { exitOnError } from './exit.js';
import { controllerCommand } from './controller-command.js';
import { statusCommand } from './status-command.js';
import { actionCommands } from './action-commands.js';
import { validateCommand } from './validate-command.js';
import { shadowReportCommand } from './shadow-report/command.js';

const program = new Command()
  .name('fledge')
  .description('Progressive delivery for AI models: shadow, canary stages gated by AI metrics, automatic rollback, per-request flags.')
  .version('0.1.0')
  .showHelpAfterError()
  // Subcommands own their options (`fledge sim --version v2` is the sim's version, not ours).
  .enablePositionalOptions();

program.addCommand(extprocCommand());
program.addCommand(simCommand());
program.addCommand(judgeCommand());
program.addCommand(modelCommand());
program.addCommand(probeCommand());
program.addCommand(controllerCommand());
program.addCommand(statusCommand());
for (const command of actionCommands()) program.addCommand(command);
program.addCommand(upCommand());
program.addCommand(demoCommand());
program.addCommand(validateCommand());
program.addCommand(shadowReportCommand());

program.parseAsync(process.argv).catch(exitOnError);
