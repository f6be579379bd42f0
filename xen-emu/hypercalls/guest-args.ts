/**
 * Argument structs in guest memory, in the caller's ABI (design decision 2): handlers copy a struct
 * in, work on a view of the copy, and copy back exactly the fields Xen copies back.
 */

import type { StructDef, StructView } from '../../abi/index.js';
import type { FieldDecl } from '../../abi/ctype.js';
import type { HypercallContext } from '../xen.js';

export interface GuestStruct<F extends readonly FieldDecl[]> {
  /** The copy taken from guest memory. */
  readonly bytes: Buffer;
  /** A view over the copy (not over guest memory). */
  readonly view: StructView<F>;
}

/** `copy_from_guest` of one struct at `va`; undefined when any byte is unmapped (-EFAULT). */
export function copyStructFromGuest<F extends readonly FieldDecl[]>(
  ctx: HypercallContext,
  def: StructDef<F>,
  va: bigint,
  index = 0,
): GuestStruct<F> | undefined {
  const size = def.sizeOf(ctx.dom.abi);
  const raw = ctx.xen.copyFromGuest(ctx.dom, va + BigInt(index * size), size);
  if (!raw) return undefined;
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  return { bytes, view: def.view(ctx.dom.abi, bytes) };
}

/** `copy_to_guest` of the whole struct (or of the named fields only); false on a fault. */
export function copyStructToGuest<F extends readonly FieldDecl[]>(
  ctx: HypercallContext,
  def: StructDef<F>,
  va: bigint,
  copy: GuestStruct<F>,
  fields?: readonly string[],
  index = 0,
): boolean {
  const abi = ctx.dom.abi;
  const base = va + BigInt(index * def.sizeOf(abi));
  if (!fields) return ctx.xen.copyToGuest(ctx.dom, base, copy.bytes);
  const layout = def.layout(abi);
  for (const name of fields) {
    const f = layout.all.find((x) => x.path === name);
    if (!f) throw new Error(`${def.name} has no field ${name}`);
    if (!ctx.xen.copyToGuest(ctx.dom, base + BigInt(f.offset), copy.bytes.subarray(f.offset, f.offset + f.size))) return false;
  }
  return true;
}

/** Reads `count` guest words (xen_pfn_t / xen_ulong_t) at `va`; undefined on a fault. */
export function copyWordsFromGuest(ctx: HypercallContext, va: bigint, count: number): bigint[] | undefined {
  const width = ctx.dom.abi.wordSize;
  const raw = ctx.xen.copyFromGuest(ctx.dom, va, count * width);
  if (!raw) return undefined;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: bigint[] = new Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = width === 8 ? view.getBigUint64(i * 8, true) : BigInt(view.getUint32(i * 4, true));
  }
  return out;
}

/** Writes one guest word at `va`; false on a fault. */
export function copyWordToGuest(ctx: HypercallContext, va: bigint, value: bigint): boolean {
  const width = ctx.dom.abi.wordSize;
  const bytes = new Uint8Array(width);
  const view = new DataView(bytes.buffer);
  if (width === 8) view.setBigUint64(0, BigInt.asUintN(64, value), true);
  else view.setUint32(0, Number(BigInt.asUintN(32, value)), true);
  return ctx.xen.copyToGuest(ctx.dom, va, bytes);
}
