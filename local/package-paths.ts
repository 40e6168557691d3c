import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The package root: this module runs from dist/local/ (compiled) or local/ (tests run the
 * TypeScript sources), one or two folders below it.
 */
const packageRoot = existsSync(resolve(import.meta.dirname, '../package.json')) ? resolve(import.meta.dirname, '..') : resolve(import.meta.dirname, '../..');

/** A file shipped with the package (examples, fixtures), by its path from the package root. */
export function packageFile(relative: string): string {
  return resolve(packageRoot, relative);
}

/** The compiled `fledge` entry point, for starting components as child processes. */
export function fledgeCli(): string {
  const cli = packageFile('dist/cli/main.js');
  if (!existsSync(cli)) throw new Error(`cannot find the compiled fledge CLI at ${cli}: run 'make build'`);
  return cli;
}
