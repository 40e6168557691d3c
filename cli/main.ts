#!/usr/bin/env node
import { Command } from 'commander';
import { extprocCommand } from './extproc-command.js';
import { exitOnError } from './exit.js';

const program = new Command()
  .name('fledge')
  .description('Progressive delivery for AI models: shadow, canary stages gated by AI metrics, automatic rollback, per-request flags.')
  .version('0.1.0')
  .showHelpAfterError();

program.addCommand(extprocCommand());

program.parseAsync(process.argv).catch(exitOnError);
