/**
 * `xenabi check-headers`: C headers, compiled by the system C compiler for each guest ABI, against
 * the ABI. Parses options, calls abi/check, prints the report; exit 0 when nothing is incompatible,
 * 1 when something is, 2 for bad input (a missing compiler or multilib names the Debian packages).
 */

import { statSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { GUEST_ABIS, GUEST_ABI_NAMES, guestAbi } from '../abi/guest-abi.js';
import { ProbeError } from '../abi/probe.js';
import { CHECK_HEADERS, checkHeaders, headersReportJson, headersReportText } from '../abi/check/index.js';
import { REPORT_FORMATS, type ReportFormat } from './check-kernel.js';
import { CliExit, commanderExit, requireChoice, UsageError, withChoices } from './errors.js';
import type { CliIo } from './io.js';

export interface RawCheckHeadersOptions {
  readonly include?: readonly string[];
  readonly define?: readonly string[];
  readonly header?: readonly string[];
  readonly arch?: string;
  readonly format?: string;
}

const DEFINE = /^[A-Za-z_]\w*(=.*)?$/;

export function runCheckHeaders(raw: RawCheckHeadersOptions, io: CliIo): void {
  const abis = raw.arch === undefined ? GUEST_ABIS : [guestAbi(requireChoice('arch', raw.arch, GUEST_ABI_NAMES))];
  const format = requireChoice<ReportFormat>('format', raw.format ?? 'text', REPORT_FORMATS);
  const includeDirs = [...(raw.include ?? [])];
  for (const dir of includeDirs) {
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) throw new UsageError(`include directory '${dir}' does not exist (valid: a directory path)`);
  }
  const defines = [...(raw.define ?? [])];
  for (const d of defines) if (!DEFINE.test(d)) throw new UsageError(`bad -D '${d}' (valid: NAME, NAME=VALUE)`);
  const headers = raw.header && raw.header.length > 0 ? [...raw.header] : [...CHECK_HEADERS];
  let report;
  try {
    report = checkHeaders({ abis, includeDirs, defines, headers });
  } catch (err) {
    if (err instanceof ProbeError) throw new UsageError(err.message);
    throw err;
  }
  io.out(format === 'json' ? headersReportJson(report) : headersReportText(report));
  if (report.exitCode !== 0) throw new CliExit(report.exitCode);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function addCheckHeadersCommand(program: Command, io: CliIo): Command {
  const cmd = program
    .command('check-headers')
    .summary('check C headers, through a real compiler, against the ABI')
    .description(
      'Compile a probe of every struct and field the kit defines against C headers with the system C ' +
        'compiler ($CC, else gcc; -m32 for x86_32, -m64 for x86_64) and compare sizes, offsets and field ' +
        'sizes with the kit. Structs and fields are looked up by Xen\'s names and by the names guests use. ' +
        'Each struct is identical, compatible (same bytes, renames listed), incompatible (moved, resized, ' +
        'missing or other-kind fields, with both offsets and sizes) or not present.',
    )
    .addOption(new Option('--include <dir>', 'add a directory to the include path, searched first; repeatable').argParser(collect))
    .addOption(new Option('-D, --define <name[=value]>', 'define a macro for the compiler; repeatable').argParser(collect))
    .addOption(new Option('--header <name>', `header to include, as #include <name>; repeatable (default: ${CHECK_HEADERS.join(', ')})`).argParser(collect))
    .addOption(withChoices(new Option('--arch <abi>', 'guest ABI to check (default: both)'), GUEST_ABI_NAMES))
    .addOption(withChoices(new Option('--format <format>', 'report format').default('text'), REPORT_FORMATS))
    .addHelpText(
      'after',
      '\nExit status: 0 nothing incompatible, 1 something incompatible, 2 bad input (no compiler, headers that do not compile).\n' +
        '\nExamples:\n' +
        '  xenabi check-headers\n' +
        '  xenabi check-headers --include ~/src/guest/include -D CONFIG_FOO --arch x86_64\n' +
        '  CC=clang xenabi check-headers --format json',
    )
    .action((raw: RawCheckHeadersOptions) => runCheckHeaders(raw, io));
  cmd.exitOverride(commanderExit(cmd));
  return cmd;
}
