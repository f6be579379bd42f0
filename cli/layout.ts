/**
 * `xenabi layout`: layout documentation of the ABI structs, printed or written to a directory.
 * Parses and checks options, then calls `abi/doc`; the only work done here is file I/O.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { ABI_STRUCTS } from '../abi/index.js';
import { GUEST_ABIS, GUEST_ABI_NAMES, guestAbi, type GuestAbi } from '../abi/guest-abi.js';
import type { StructInfo } from '../abi/struct.js';
import { DOC_FORMATS, layoutDocFiles, layoutDocument, type DocFile, type DocFormat } from '../abi/doc/index.js';
import { CliFailure, commanderExit, describeFsError, requireChoice, withChoices } from './errors.js';
import type { CliIo } from './io.js';

/** Options as commander hands them over, before checking. */
export interface RawLayoutOptions {
  readonly arch?: string;
  readonly struct?: readonly string[];
  readonly format?: string;
  readonly out?: string;
}

export interface LayoutRequest {
  readonly abis: readonly GuestAbi[];
  readonly structs: readonly StructInfo[];
  readonly format: DocFormat;
  /** Output directory; standard output when undefined. */
  readonly out?: string;
}

/** Checks raw options against the registries; unknown values are UsageErrors naming the valid ones. */
export function parseLayoutOptions(raw: RawLayoutOptions, registry: readonly StructInfo[] = ABI_STRUCTS): LayoutRequest {
  const abis = raw.arch === undefined ? GUEST_ABIS : [guestAbi(requireChoice('arch', raw.arch, GUEST_ABI_NAMES))];
  const format = requireChoice('format', raw.format ?? 'md', DOC_FORMATS);
  const names = registry.map((s) => s.name);
  const wanted = new Set((raw.struct ?? []).map((name) => requireChoice('struct', name, names)));
  const structs = wanted.size === 0 ? registry : registry.filter((s) => wanted.has(s.name));
  return { abis, structs, format, ...(raw.out === undefined ? {} : { out: raw.out }) };
}

/** Writes `files` into `dir`, creating it; failures are one-line CliFailures. */
export function writeDocFiles(dir: string, files: readonly DocFile[]): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new CliFailure(`cannot create output directory '${dir}': ${describeFsError(err)}`);
  }
  for (const file of files) {
    const path = join(dir, file.name);
    try {
      writeFileSync(path, file.content);
    } catch (err) {
      throw new CliFailure(`cannot write '${path}': ${describeFsError(err)}`);
    }
  }
}

export function runLayout(request: LayoutRequest, io: CliIo): void {
  const selection = { structs: request.structs, abis: request.abis };
  if (request.out === undefined) {
    io.out(layoutDocument(request.format, selection));
  } else {
    writeDocFiles(request.out, layoutDocFiles(request.format, selection));
  }
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function addLayoutCommand(program: Command, io: CliIo): Command {
  const names = ABI_STRUCTS.map((s) => s.name);
  const cmd = program
    .command('layout')
    .summary('generate layout documentation of the ABI structs')
    .description(
      'Generate layout documentation of the Xen structs the kit defines: offsets, sizes, C types and ' +
        'field docs per guest ABI, holes and tail padding as rows, and what differs between x86_32 and ' +
        'x86_64. Prints one document, or writes files into the directory given by --out.',
    )
    .addOption(withChoices(new Option('--arch <abi>', 'guest ABI to document (default: both)'), GUEST_ABI_NAMES))
    .addOption(
      withChoices(new Option('--struct <name>', 'struct to document, Xen\'s name without "struct"; repeatable (default: all)'), names).argParser(collect),
    )
    .addOption(withChoices(new Option('--format <format>', 'output format').default('md'), DOC_FORMATS))
    .addOption(new Option('--out <dir>', 'write files into this directory, creating it (default: standard output)'))
    .addHelpText(
      'after',
      '\nFiles written with --out:\n' +
        '  md    README.md (index) and <struct>.md per struct\n' +
        '  html  layouts.html (one self-contained page with byte maps)\n' +
        '  json  <arch>.json per ABI\n' +
        '  c     xenabi-layout-asserts.h (_Static_asserts of every size and offset, per bitness)\n' +
        '\nExamples:\n' +
        '  xenabi layout --arch x86_64 --struct shared_info\n' +
        '  xenabi layout --format json --arch x86_32 > x86_32.json\n' +
        '  xenabi layout --format html --out docs/layouts\n' +
        '  xenabi layout --format c > xenabi-layout-asserts.h',
    )
    .action((raw: RawLayoutOptions) => runLayout(parseLayoutOptions(raw), io));
  cmd.exitOverride(commanderExit(cmd));
  return cmd;
}
