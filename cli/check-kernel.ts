/**
 * `xenabi check-kernel FILE`: a built guest kernel's BTF against the ABI. Parses options, calls
 * abi/check, prints the report; exit 0 when nothing is incompatible, 1 when something is, 2 for bad
 * input (one line, with the file offset where it applies).
 */

import { Option, type Command } from 'commander';
import { GUEST_ABI_NAMES, type GuestAbiName } from '../abi/guest-abi.js';
import { checkKernelFile, InputFileError, kernelReportJson, kernelReportText } from '../abi/check/index.js';
import { CliExit, commanderExit, requireChoice, UsageError, withChoices } from './errors.js';
import type { CliIo } from './io.js';

export const REPORT_FORMATS = Object.freeze(['text', 'json'] as const);
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export interface RawCheckKernelOptions {
  readonly arch?: string;
  readonly format?: string;
}

export function runCheckKernel(file: string, raw: RawCheckKernelOptions, io: CliIo): void {
  const arch = raw.arch === undefined ? undefined : requireChoice<GuestAbiName>('arch', raw.arch, GUEST_ABI_NAMES);
  const format = requireChoice<ReportFormat>('format', raw.format ?? 'text', REPORT_FORMATS);
  let report;
  try {
    report = checkKernelFile(file, arch === undefined ? {} : { arch });
  } catch (err) {
    if (err instanceof InputFileError) throw new UsageError(err.message);
    throw err;
  }
  io.out(format === 'json' ? kernelReportJson(report) : kernelReportText(report));
  if (report.exitCode !== 0) throw new CliExit(report.exitCode);
}

export function addCheckKernelCommand(program: Command, io: CliIo): Command {
  const cmd = program
    .command('check-kernel')
    .summary('check a built kernel\'s BTF against the ABI')
    .description(
      'Check the layouts of the ABI structs in a built guest kernel against the kit: reads BTF from an ' +
        'ELF file\'s .BTF section (vmlinux, a module, an object after pahole -J), raw BTF such as ' +
        '/sys/kernel/btf/vmlinux, or a compressed kernel image (bzImage, vmlinuz: gzip, xz, lz4, zstd). ' +
        'Structs are found by Xen\'s names and by the names guests use (Linux: pvclock_vcpu_time_info, ' +
        'shared_info.wc, address_bits). Each is identical, compatible (same bytes, renames listed), ' +
        'incompatible (moved, resized, missing or other-kind fields, with both offsets and sizes) or not present.',
    )
    .argument('<file>', 'vmlinux, .o, raw BTF or kernel image')
    .addOption(withChoices(new Option('--arch <abi>', 'guest ABI (default: from the ELF class, else the size of long)'), GUEST_ABI_NAMES))
    .addOption(withChoices(new Option('--format <format>', 'report format').default('text'), REPORT_FORMATS))
    .addHelpText(
      'after',
      '\nExit status: 0 nothing incompatible, 1 something incompatible, 2 bad input.\n' +
        '\nExamples:\n' +
        '  xenabi check-kernel vmlinux\n' +
        '  xenabi check-kernel /sys/kernel/btf/vmlinux --format json\n' +
        '  xenabi check-kernel arch/x86/boot/bzImage --arch x86_64',
    )
    .action((file: string, raw: RawCheckKernelOptions) => runCheckKernel(file, raw, io));
  cmd.exitOverride(commanderExit(cmd));
  return cmd;
}
