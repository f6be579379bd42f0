/**
 * Holds the kit's layouts and constants against what a compiler reported for Xen's headers (a live
 * probe, or the committed fixture made from one). Mismatches use the kit's one failure shape:
 * `Fail: <context>, expected X, got Y` — expected is the compiler's figure, got is the kit's.
 */

import { checkedOn, type ConstantGroup } from './constants.js';
import type { GuestAbi } from './guest-abi.js';
import type { ProbeResult } from './probe.js';
import type { StructInfo } from './struct.js';

export interface OracleMismatch {
  readonly context: string;
  readonly expected: string;
  readonly got: string;
}

export interface OracleReport {
  readonly mismatches: readonly OracleMismatch[];
  readonly structs: number;
  /** Fields whose offset and size were compared (anonymous aggregates included). */
  readonly fields: number;
  readonly constants: number;
  readonly messages: number;
}

export function formatMismatch(m: OracleMismatch): string {
  return `Fail: ${m.context}, expected ${m.expected}, got ${m.got}`;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

export function compareWithOracle(
  abi: GuestAbi,
  structs: readonly StructInfo[],
  groups: readonly ConstantGroup[],
  oracle: ProbeResult,
  gntstMessages?: readonly string[],
): OracleReport {
  const mismatches: OracleMismatch[] = [];
  const miss = (context: string, expected: string, got: string): void => {
    mismatches.push({ context: `${context} (${abi.name})`, expected, got });
  };
  if (oracle.abi !== abi.name) miss('oracle ABI', abi.name, oracle.abi);
  let fields = 0;
  for (const s of structs) {
    const layout = s.layout(abi);
    const compiled = oracle.structs[s.name];
    if (!compiled) {
      miss(`${s.name}`, 'a compiled layout', 'none in the oracle (regenerate it)');
      continue;
    }
    if (compiled.size !== layout.size) miss(`sizeof(${s.name})`, String(compiled.size), String(layout.size));
    if (compiled.align !== layout.align) miss(`_Alignof(${s.name})`, String(compiled.align), String(layout.align));
    const ours = new Set<string>();
    for (const f of layout.all) {
      ours.add(f.path);
      fields++;
      const c = compiled.fields[f.path];
      if (!c) {
        miss(`${s.name}.${f.path}`, 'a field the compiler knows', 'a field the oracle lacks');
        continue;
      }
      if (c[0] !== f.offset) miss(`offsetof(${s.name}, ${f.path})`, hex(c[0]), hex(f.offset));
      if (c[1] !== f.size) miss(`sizeof(${s.name}.${f.path})`, String(c[1]), String(f.size));
    }
    for (const path of Object.keys(compiled.fields)) {
      if (!ours.has(path)) miss(`${s.name}.${path}`, 'a field of the kit', 'absent from abi/');
    }
  }
  let constants = 0;
  for (const g of groups) {
    if (!checkedOn(g, abi.name)) continue;
    for (const [name, value] of Object.entries(g.values)) {
      constants++;
      const c = oracle.constants[name];
      if (c === undefined) miss(`${name} (${g.header})`, 'a compiled value', 'none in the oracle (regenerate it)');
      else if (BigInt(c) !== BigInt(value)) miss(`${name} (${g.header})`, c, String(value));
    }
  }
  let messages = 0;
  if (gntstMessages) {
    const compiled = oracle.gntst_messages;
    messages = Math.max(compiled.length, gntstMessages.length);
    for (let i = 0; i < messages; i++) {
      if (compiled[i] !== gntstMessages[i]) {
        miss(`GNTTABOP_error_msgs[${i}]`, JSON.stringify(compiled[i] ?? null), JSON.stringify(gntstMessages[i] ?? null));
      }
    }
  }
  return { mismatches, structs: structs.length, fields, constants, messages };
}
