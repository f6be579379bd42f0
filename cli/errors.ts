/**
 * Errors of the `xenabi` command and how they are reported: always one line on standard error,
 * `xenabi: error: <what> (valid: <choices>)`, never a stack trace. Exit codes: 0 success,
 * 1 the command failed (e.g. an unwritable `--out`), 2 bad command-line input.
 */

import type { Command, CommanderError, Option } from 'commander';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Bad command-line input: reported in one line, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly exitCode = EXIT_USAGE;
}

/** The command understood its input but could not do the work: one line, exit 1. */
export class CliFailure extends Error {
  override name = 'CliFailure';
  readonly exitCode = EXIT_FAILURE;
}

/** Stop now with this exit code; whatever had to be printed (help, version) already was. */
export class CliExit extends Error {
  override name = 'CliExit';
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** The line printed for an error: `xenabi: error: <message>\n`. */
export function errorLine(message: string): string {
  return `xenabi: error: ${oneLine(message)}\n`;
}

/** `(valid: a, b, c)` */
export function validList(choices: readonly string[]): string {
  return `(valid: ${choices.join(', ')})`;
}

/** `unknown struct 'foo' (valid: vcpu_time_info, …)` */
export function unknownChoice(noun: string, value: string, choices: readonly string[]): UsageError {
  return new UsageError(`unknown ${noun} '${value}' ${validList(choices)}`);
}

/** `value` when it is one of `choices`, else a UsageError naming them. */
export function requireChoice<T extends string>(noun: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw unknownChoice(noun, value, choices);
  return value as T;
}

/** An option that takes one of a fixed list of values; the list shows in help and in errors. */
export function withChoices(option: Option, choices: readonly string[]): Option {
  option.argChoices = [...choices];
  return option;
}

function quoted(message: string): string {
  return /'([^']*)'/.exec(message)?.[1] ?? '';
}

function optionNames(cmd: Command): string[] {
  const names = cmd.options.filter((o) => !o.hidden).map((o) => o.long ?? o.short ?? o.flags);
  return [...names, '--help'];
}

/** Names of `cmd`'s subcommands, `help` included. */
export function commandNames(cmd: Command): string[] {
  return [...new Set([...cmd.commands.map((c) => c.name()), 'help'])];
}

/** What a value-taking option without a fixed list expects, by its placeholder (`--out <dir>`). */
const PLACEHOLDERS: Readonly<Record<string, string>> = Object.freeze({
  dir: 'a directory path',
  file: 'a file path',
});

function expectedValue(flags: string): string {
  const placeholder = /<([^>]*)>/.exec(flags)?.[1] ?? '';
  return PLACEHOLDERS[placeholder] ?? `a value for <${placeholder}>`;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Commander's parse errors, reworded into one line that names the valid choices. */
export function usageErrorFrom(cmd: Command, err: CommanderError): UsageError {
  switch (err.code) {
    case 'commander.unknownOption':
      return new UsageError(`unknown option '${quoted(err.message)}' for '${commandPath(cmd)}' ${validList(optionNames(cmd))}`);
    case 'commander.unknownCommand':
      return unknownChoice('command', quoted(err.message), commandNames(cmd));
    case 'commander.optionMissingArgument': {
      const flags = quoted(err.message);
      const option = cmd.options.find((o) => o.flags === flags);
      const name = option?.long ?? flags;
      const choices = option?.argChoices;
      const expected = validList(choices ?? [expectedValue(flags)]);
      return new UsageError(`option '${name}' needs a value ${expected}`);
    }
    case 'commander.excessArguments': {
      const extra = cmd.args[cmd.registeredArguments.length] ?? '';
      return new UsageError(
        `unexpected argument '${extra}' for '${commandPath(cmd)}' ${validList(optionNames(cmd))}`,
      );
    }
    default:
      return new UsageError(err.message.replace(/^error:\s*/, ''));
  }
}

/**
 * The `exitOverride` for one command: help and version end the run with their own exit code (help
 * shown because a command is missing counts as a usage error); parse errors become UsageErrors.
 */
export function commanderExit(cmd: Command): (err: CommanderError) => never {
  return (err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') throw new CliExit(EXIT_OK);
    if (err.code === 'commander.help') throw new CliExit(err.exitCode === 0 ? EXIT_OK : EXIT_USAGE);
    throw usageErrorFrom(cmd, err);
  };
}

/** Reports any error of a run as one line and returns the exit code. */
export function reportError(err: unknown, write: (text: string) => void): number {
  if (err instanceof CliExit) return err.exitCode;
  if (err instanceof UsageError || err instanceof CliFailure) {
    write(errorLine(err.message));
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  write(errorLine(`internal error: ${message}`));
  return EXIT_FAILURE;
}

/** `ENOTDIR: not a directory` from a Node file-system error, else its message. */
export function describeFsError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const text = err.message.replace(/,.*$/, '');
    return code && text.startsWith(code) ? text : err.message;
  }
  return String(err);
}
