/**
 * What the layout renderers (markdown, HTML, JSON) share: which structs and ABIs to render, how
 * offsets and gaps are spelled, and how one struct's layout differs between the two ABIs.
 * Pure functions over `StructInfo.layout()`; no I/O.
 */

import type { CType } from '../ctype.js';
import type { GuestAbi } from '../guest-abi.js';
import type { FieldLayout, LayoutRow, StructInfo, StructLayout } from '../struct.js';

/** The structs and ABIs one document covers, each in documentation order. */
export interface LayoutSelection {
  readonly structs: readonly StructInfo[];
  readonly abis: readonly GuestAbi[];
}

/** Hex digits used for offsets inside a struct of `size` bytes (at least 4: `0x0c10`). */
export function hexDigits(size: number): number {
  return Math.max(4, size.toString(16).length);
}

/** `0x0c10 (3088)`: hex padded to `digits`, then decimal. */
export function formatOffset(offset: number, digits: number): string {
  return `0x${offset.toString(16).padStart(digits, '0')} (${offset})`;
}

/** `3136 (0xc40)`: a size in decimal, then hex. */
export function formatSize(size: number): string {
  return `${size} (0x${size.toString(16)})`;
}

function bytes(n: number): string {
  return n === 1 ? '1 byte' : `${n} bytes`;
}

/** pahole's comment for a gap row: `/* XXX 6 bytes hole *\/`, `/* 4 bytes tail padding *\/`. */
export function gapComment(row: Exclude<LayoutRow, { kind: 'field' }>, structName: string): string {
  const where = row.within === structName ? '' : ` in ${row.within}`;
  return row.kind === 'hole'
    ? `/* XXX ${bytes(row.size)} hole${where} */`
    : `/* ${bytes(row.size)} tail padding${where} */`;
}

/** The field column's text for a gap row. */
export function gapLabel(row: Exclude<LayoutRow, { kind: 'field' }>): string {
  return row.kind === 'hole' ? '(hole)' : '(padding)';
}

/** `struct shared_info` or `union grant_entry_v2`. */
export function structTitle(struct: StructInfo): string {
  return `${struct.kind} ${struct.name}`;
}

/** Headers as listed by the declaration (`a.h, b.h`), relative to Xen's `include/public/`. */
export function headersOf(struct: StructInfo): string[] {
  return struct.header
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
}

/** The named struct a field's type refers to, through arrays: `struct vcpu_info[32]` → vcpu_info. */
export function referencedStruct(type: CType): StructInfo | undefined {
  if (type.kind === 'struct') return type.def;
  if (type.kind === 'array') return referencedStruct(type.of);
  return undefined;
}

/**
 * A field's C type split for linking: `struct vcpu_info[32]` → head `struct vcpu_info`, rest `[32]`,
 * target vcpu_info. Without a struct reference, head is the whole type and target undefined.
 */
export function splitTypeForLink(field: FieldLayout): { head: string; rest: string; target?: StructInfo } {
  const target = referencedStruct(field.type);
  if (!target) return { head: field.cType, rest: '' };
  const head = structTitle(target);
  if (!field.cType.startsWith(head)) return { head: field.cType, rest: '' };
  return { head, rest: field.cType.slice(head.length), target };
}

export type FieldDifference = 'offset' | 'size' | 'type';

/** One dotted field path across two ABIs; `a` or `b` is missing when the field exists in one only. */
export interface ComparedField {
  readonly path: string;
  readonly a?: FieldLayout;
  readonly b?: FieldLayout;
  readonly differences: readonly FieldDifference[];
}

export interface AbiComparison {
  readonly struct: StructInfo;
  readonly abiA: GuestAbi;
  readonly abiB: GuestAbi;
  readonly layoutA: StructLayout;
  readonly layoutB: StructLayout;
  /** Leaf fields of both ABIs, merged in declaration order. */
  readonly fields: readonly ComparedField[];
  /** Same leaf paths, offsets, sizes and C types, and the same sizeof. Alignment may still differ. */
  readonly identical: boolean;
  readonly alignDiffers: boolean;
}

/** Leaf paths of `b` merged into those of `a`, each `b`-only path placed after its predecessor in `b`. */
function mergePaths(a: readonly string[], b: readonly string[]): string[] {
  const merged = [...a];
  let last = -1;
  for (const path of b) {
    const at = merged.indexOf(path);
    if (at >= 0) {
      last = at;
    } else {
      merged.splice(last + 1, 0, path);
      last += 1;
    }
  }
  return merged;
}

function differencesOf(a: FieldLayout | undefined, b: FieldLayout | undefined): FieldDifference[] {
  if (!a || !b) return [];
  const out: FieldDifference[] = [];
  if (a.offset !== b.offset) out.push('offset');
  if (a.size !== b.size) out.push('size');
  if (a.cType !== b.cType) out.push('type');
  return out;
}

/** How `struct` differs between two ABIs, field by field. */
export function compareAbis(struct: StructInfo, abiA: GuestAbi, abiB: GuestAbi): AbiComparison {
  const layoutA = struct.layout(abiA);
  const layoutB = struct.layout(abiB);
  const byPathA = new Map(layoutA.leaves.map((f) => [f.path, f]));
  const byPathB = new Map(layoutB.leaves.map((f) => [f.path, f]));
  const paths = mergePaths(
    layoutA.leaves.map((f) => f.path),
    layoutB.leaves.map((f) => f.path),
  );
  const fields = paths.map((path): ComparedField => {
    const a = byPathA.get(path);
    const b = byPathB.get(path);
    return { path, ...(a ? { a } : {}), ...(b ? { b } : {}), differences: differencesOf(a, b) };
  });
  const identical =
    layoutA.size === layoutB.size && fields.every((f) => f.a && f.b && f.differences.length === 0);
  return {
    struct,
    abiA,
    abiB,
    layoutA,
    layoutB,
    fields,
    identical,
    alignDiffers: layoutA.align !== layoutB.align,
  };
}

/** The "differs" column: `x86_64 only`, or the differing properties, or empty when equal. */
export function describeDifference(field: ComparedField, cmp: AbiComparison): string {
  if (!field.a) return `${cmp.abiB.name} only`;
  if (!field.b) return `${cmp.abiA.name} only`;
  return field.differences.join(', ');
}

/** The sentence shown instead of a side-by-side table when both ABIs lay the struct out alike. */
export function identicalSentence(cmp: AbiComparison): string {
  const base = `The layout is identical on ${cmp.abiA.name} and ${cmp.abiB.name}: same fields, offsets and sizes.`;
  if (!cmp.alignDiffers) return base;
  return (
    `${base} Only the alignment differs (${cmp.layoutA.align} on ${cmp.abiA.name}, ` +
    `${cmp.layoutB.align} on ${cmp.abiB.name}), which matters where the struct is embedded.`
  );
}

/** In-page anchor of a struct's section: `struct-shared_info` (GitHub's slug of its heading). */
export function anchorOf(struct: StructInfo): string {
  return `${struct.kind}-${struct.name}`;
}

/** The file `--out` writes for one struct in markdown. */
export function markdownFileOf(struct: StructInfo): string {
  return `${struct.name}.md`;
}

export const DOC_TITLE = 'Xen x86 PV guest ABI layouts';

export const DOC_INTRO =
  'Byte-exact layouts of the Xen public structs an x86 PV guest shares with Xen and the toolstack, ' +
  'generated from the struct declarations in the kit\'s `abi/`. Offsets and sizes are in bytes from ' +
  'the start of the struct; headers are relative to Xen\'s `include/public/`. Holes and tail padding ' +
  'are listed as rows, as pahole shows them.';
