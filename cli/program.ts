/**
 * The `xenabi` program: commander setup shared by every command, and `main`, which runs one
 * command line and returns the exit code. A fresh program per run, so runs never share state.
 */

import { Command } from 'commander';
import { EXIT_OK, commandNames, commanderExit, reportError, unknownChoice } from './errors.js';
import type { CliIo } from './io.js';
import { addCheckHeadersCommand } from './check-headers.js';
import { addCheckKernelCommand } from './check-kernel.js';
import { addLayoutCommand } from './layout.js';
import { addVerifyStreamCommand } from './verify-stream.js';
import { addMigrateCommand } from './migrate.js';
import { addCheckTraceCommand } from './check-trace.js';
import { packageVersion } from './package-info.js';
import { addConformanceCommand } from './conformance.js';

export function buildProgram(io: CliIo, version: string): Command {
  const program = new Command('xenabi')
    .description('Xen x86 PV guest ABI kit: byte-exact layouts, p2m update protocol, live-migration conformance.')
    .version(version, '-V, --version', 'print the version and exit')
    .configureOutput({
      writeOut: (text) => io.out(text),
      writeErr: (text) => io.err(text),
      // Errors are reported by `main` as one line; commander's own wording is replaced.
      outputError: () => undefined,
    })
    .showSuggestionAfterError(false)
    .addHelpText('after', '\nRun `xenabi help COMMAND` or `xenabi COMMAND --help` for the options of a command.');
  program.exitOverride(commanderExit(program));
  addLayoutCommand(program, io);
  addCheckHeadersCommand(program, io);
  addCheckKernelCommand(program, io);
  addVerifyStreamCommand(program, io);
  addMigrateCommand(program, io);
  addCheckTraceCommand(program, io);
  addConformanceCommand(program, io);
  addHelpCommand(program);
  return program;
}

/** `xenabi help [COMMAND]`, which (unlike commander's own) rejects an unknown COMMAND in one line. */
function addHelpCommand(program: Command): void {
  program.helpCommand(false);
  const help = program
    .command('help [command]')
    .description('display help for command')
    .action((name: string | undefined) => {
      if (name === undefined) {
        program.outputHelp();
        return;
      }
      const target = program.commands.find((c) => c.name() === name);
      if (!target) throw unknownChoice('command', name, commandNames(program));
      target.outputHelp();
    });
  help.exitOverride(commanderExit(help));
}

/** Runs one command line (without `node` and the script) and returns the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const program = buildProgram(io, packageVersion());
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    return reportError(err, (text) => io.err(text));
  }
}
