/**
 * `xenabi check-trace FILE [--json]`: applies the guest rules (conformance/rules/guest) to a
 * recorded guest trace (docs/trace-format.md) and prints each violation with its rule, title,
 * trace line and message, or "no violations". Exit 0 clean, 1 violations, 2 a malformed or
 * unreadable trace (one line naming the trace line) or a bad option.
 */

import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { checkTraceText, TraceFormatError, type TraceCheckResult } from '../conformance/trace/index.js';
import { CliExit, EXIT_FAILURE, UsageError, commanderExit, describeFsError } from './errors.js';
import type { CliIo } from './io.js';

export interface RawCheckTraceOptions {
  readonly json?: boolean;
}

function text(file: string, r: TraceCheckResult): string {
  const head = `${file}: ${r.header.abi} domain ${r.header.domid}${r.header.guest ? ` (${r.header.guest})` : ''}, ${r.events} events`;
  if (r.total === 0) return `${head}: no violations\n`;
  const lines = [`${head}: ${r.total} violation${r.total === 1 ? '' : 's'} of ${r.reports.length} rule${r.reports.length === 1 ? '' : 's'}`];
  for (const rep of r.reports) {
    lines.push(`${rep.rule.id}  ${rep.rule.title} (${rep.count})`);
    for (const v of r.violations.filter((x) => x.rule === rep.rule.id)) lines.push(`  line ${v.line}: ${v.message}`);
    if (rep.count > rep.first.length) lines.push(`  … ${rep.count - rep.first.length} more`);
  }
  return `${lines.join('\n')}\n`;
}

function json(file: string, r: TraceCheckResult): string {
  return `${JSON.stringify(
    {
      file,
      header: r.header,
      events: r.events,
      total: r.total,
      rules: r.reports.map((rep) => ({ id: rep.rule.id, title: rep.rule.title, rule: rep.rule.rule, count: rep.count })),
      violations: r.violations.map((v) => ({
        rule: v.rule,
        title: r.reports.find((rep) => rep.rule.id === v.rule)?.rule.title ?? '',
        line: v.line,
        message: v.message,
        ...(v.pfn === undefined ? {} : { pfn: v.pfn }),
        ...(v.mfn === undefined ? {} : { mfn: v.mfn }),
      })),
    },
    null,
    2,
  )}\n`;
}

export function runCheckTrace(file: string, raw: RawCheckTraceOptions, io: CliIo): void {
  let content: string;
  try {
    content = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read trace ${file}: ${describeFsError(err)}`);
  }
  let result: TraceCheckResult;
  try {
    result = checkTraceText(content);
  } catch (err) {
    if (err instanceof TraceFormatError) throw new UsageError(`malformed trace ${file}: ${err.message}`);
    throw err;
  }
  io.out(raw.json ? json(file, result) : text(file, result));
  if (result.total > 0) throw new CliExit(EXIT_FAILURE);
}

export function addCheckTraceCommand(program: Command, io: CliIo): Command {
  const cmd = program
    .command('check-trace')
    .summary('apply the guest rules to a recorded guest trace')
    .description(
      'Read a guest trace (JSON Lines, docs/trace-format.md: recorded by the emulator or converted from a ' +
        'real guest) and apply every guest rule of the p2m protocol to it, with the same code the online ' +
        'check runs. Prints each violation (rule id, title, trace line, message), or "no violations".',
    )
    .argument('<file>', 'the trace file')
    .addOption(new Option('--json', 'print the result as JSON'))
    .addHelpText('after', '\nExit status: 0 no violations, 1 violations, 2 malformed or unreadable trace, bad option.\n\nExample:\n  xenabi check-trace guest.trace.jsonl --json')
    .action((file: string, raw: RawCheckTraceOptions) => runCheckTrace(file, raw, io));
  cmd.exitOverride(commanderExit(cmd));
  return cmd;
}
