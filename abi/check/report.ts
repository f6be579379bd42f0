/**
 * Reports of check-kernel and check-headers: text for people, JSON for tools. Pure functions that
 * return strings; the CLI prints them.
 */

import { hex } from './errors.js';
import type { StructReport, StructStatus } from './compare.js';
import type { HeadersCheckReport } from './headers.js';
import type { KernelCheckReport } from './kernel.js';

const WIDTH = 'incompatible'.length;

/** The lines of one struct: its status and name, then renames, notes and failures, indented. */
export function structLines(r: StructReport): string[] {
  const head = `  ${r.status.padEnd(WIDTH)}  ${r.kind} ${r.name}${r.foundAs && r.foundAs !== `${r.kind} ${r.name}` ? ` (as ${r.foundAs})` : ''}`;
  const more: string[] = [];
  if (r.renames.length > 0) {
    more.push(`renamed: ${r.renames.map((x) => `${x.from} → ${x.to}${x.guest ? ` (${x.guest})` : ''}`).join(', ')}`);
  }
  for (const t of r.retyped) more.push(`retyped: ${t.field}: ${t.expected} → ${t.got}`);
  if (r.extra.length > 0) more.push(`extra: ${r.extra.map((e) => `${e.path} (${e.size} bytes at ${hex(e.offset)})`).join(', ')}`);
  more.push(...r.failures, ...r.problems.map((p) => p.message));
  for (const n of r.notes) more.push(`note: ${n}`);
  return [head, ...more.map((line) => `  ${' '.repeat(WIDTH)}    ${line}`)];
}

export function summaryLine(abi: string, summary: Readonly<Record<StructStatus, number>>): string {
  return `  ${abi}: ${summary.identical} identical, ${summary.compatible} compatible, ${summary.incompatible} incompatible, ${summary['not present']} not present`;
}

function verdict(exitCode: 0 | 1): string {
  return exitCode === 0 ? 'result: no struct is incompatible (exit 0)' : 'result: incompatible structs found (exit 1)';
}

export function kernelReportText(r: KernelCheckReport): string {
  const unknown = Object.entries(r.btf.unknownKinds);
  const lines = [
    `xenabi check-kernel${r.file === undefined ? '' : ` ${r.file}`}`,
    `  BTF: ${r.container.join(' → ')} at ${hex(r.btf.fileOffset)}, ${r.btf.bytes} bytes, ${r.btf.types} types` +
      (unknown.length > 0 ? `; skipped ${unknown.map(([k, n]) => `${n} of unknown kind ${k}`).join(', ')}` : ''),
    `  guest ABI: ${r.abi} (from the ${r.abiFrom})`,
    '',
    ...r.structs.flatMap(structLines),
    '',
    summaryLine(r.abi, r.summary),
    verdict(r.exitCode),
  ];
  return `${lines.join('\n')}\n`;
}

export function headersReportText(r: HeadersCheckReport): string {
  const lines = [
    'xenabi check-headers',
    `  compiler: ${r.compiler}`,
    `  headers: ${r.headers.join(', ')}${r.includeDirs.length > 0 ? ` from ${r.includeDirs.join(', ')}` : ''}`,
    ...(r.defines.length > 0 ? [`  defines: ${r.defines.join(' ')}`] : []),
  ];
  for (const a of r.abis) lines.push('', `${a.abi}:`, ...a.structs.flatMap(structLines));
  lines.push('', ...r.abis.map((a) => summaryLine(a.abi, a.summary)), verdict(r.exitCode));
  return `${lines.join('\n')}\n`;
}

export function kernelReportJson(r: KernelCheckReport): string {
  return `${JSON.stringify({ command: 'check-kernel', ...r }, null, 2)}\n`;
}

export function headersReportJson(r: HeadersCheckReport): string {
  return `${JSON.stringify({ command: 'check-headers', ...r }, null, 2)}\n`;
}
