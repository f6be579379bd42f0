/**
 * The C types that Xen's public headers use, as data. A field's type is one of these; sizes and
 * alignments follow from the guest ABI, never from a number written by hand.
 */

import type { GuestAbi, GuestAbiName } from './guest-abi.js';
import type { StructInfo } from './struct.js';

/** Width in bytes, or `'word'` for the guest's `unsigned long` width (4 or 8). */
export type PrimWidth = 1 | 2 | 4 | 8 | 'word';

export interface PrimType<W extends PrimWidth = PrimWidth> {
  readonly kind: 'prim';
  /** The spelling in Xen's headers, e.g. `xen_pfn_t` or `XEN_GUEST_HANDLE(xen_pfn_t)`. */
  readonly c: string;
  readonly width: W;
  readonly signed: boolean;
}

export interface ArrayType<E extends CType = CType> {
  readonly kind: 'array';
  readonly of: E;
  readonly length: number;
}

export interface StructRefType<D extends StructInfo = StructInfo> {
  readonly kind: 'struct';
  readonly def: D;
}

/** An anonymous struct or union declared inside its parent; its members are listed dotted. */
export interface InlineType<F extends readonly FieldDecl[] = readonly FieldDecl[]> {
  readonly kind: 'inline';
  readonly union: boolean;
  readonly fields: F;
}

export type CType = PrimType | ArrayType | StructRefType | InlineType;

/** A type that differs between the two ABIs (e.g. `unsigned long pad` vs `pad[5]`). */
export interface PerAbiType<A extends CType = CType, B extends CType = CType> {
  readonly kind: 'per-abi';
  readonly x86_32: A;
  readonly x86_64: B;
}

export interface FieldDecl<N extends string = string, T extends CType | PerAbiType = CType | PerAbiType> {
  readonly name: N;
  readonly type: T;
  /** Meaning, units and address space, who writes it, invariants. */
  readonly doc: string;
  /** Present only in this ABI (e.g. `shared_info.wc_sec_hi` is x86_64 only). */
  readonly only?: GuestAbiName;
  /**
   * Other names the headers give some or all of the same bytes, declared beside this field in an
   * anonymous union (e.g. `eax`, `ax`, `al`, `ah` for `cpu_user_regs.rax`). Each starts within the
   * field and ends by its end; which of them a compiler sees depends on the build's macros.
   */
  readonly aliases?: readonly string[];
}

function prim<W extends PrimWidth>(c: string, width: W, signed = false): PrimType<W> {
  return Object.freeze({ kind: 'prim', c, width, signed });
}

export const uint8_t = prim('uint8_t', 1);
export const int8_t = prim('int8_t', 1, true);
export const char = prim('char', 1, true);
export const uint16_t = prim('uint16_t', 2);
export const int16_t = prim('int16_t', 2, true);
export const uint32_t = prim('uint32_t', 4);
export const int32_t = prim('int32_t', 4, true);
export const unsigned_int = prim('unsigned int', 4);
export const uint64_t = prim('uint64_t', 8);
export const unsigned_long = prim('unsigned long', 'word');
export const xen_ulong_t = prim('xen_ulong_t', 'word');
export const xen_pfn_t = prim('xen_pfn_t', 'word');
export const domid_t = prim('domid_t', 2);
export const grant_ref_t = prim('grant_ref_t', 4);
export const grant_handle_t = prim('grant_handle_t', 4);

/** `XEN_GUEST_HANDLE(type)`: a guest virtual address, one word wide. */
export function guestHandle(of: string): PrimType<'word'> {
  return prim(`XEN_GUEST_HANDLE(${of})`, 'word');
}

export function array<E extends CType>(of: E, length: number): ArrayType<E> {
  return Object.freeze({ kind: 'array', of, length });
}

export function struct<D extends StructInfo>(def: D): StructRefType<D> {
  return Object.freeze({ kind: 'struct', def });
}

export function inlineStruct<const F extends readonly FieldDecl[]>(fields: F): InlineType<F> {
  return Object.freeze({ kind: 'inline', union: false, fields });
}

export function inlineUnion<const F extends readonly FieldDecl[]>(fields: F): InlineType<F> {
  return Object.freeze({ kind: 'inline', union: true, fields });
}

export function perAbi<A extends CType, B extends CType>(x86_32: A, x86_64: B): PerAbiType<A, B> {
  return Object.freeze({ kind: 'per-abi', x86_32, x86_64 });
}

export function field<const N extends string, T extends CType | PerAbiType>(
  name: N,
  type: T,
  doc: string,
  only?: GuestAbiName,
): FieldDecl<N, T> {
  return Object.freeze(only === undefined ? { name, type, doc } : { name, type, doc, only });
}

/** `decl` with the names its bytes also go by in an anonymous union of the headers. */
export function aliased<const D extends FieldDecl>(decl: D, aliases: readonly string[]): D & { readonly aliases: readonly string[] } {
  return Object.freeze({ ...decl, aliases: Object.freeze([...aliases]) });
}

export function resolveType(type: CType | PerAbiType, abi: GuestAbi): CType {
  return type.kind === 'per-abi' ? type[abi.name] : type;
}

export function primSize(type: PrimType, abi: GuestAbi): number {
  return type.width === 'word' ? abi.wordSize : type.width;
}

/** Alignment inside a struct: 8-byte integers are 4-byte aligned on i386. */
export function primAlign(type: PrimType, abi: GuestAbi): number {
  const size = primSize(type, abi);
  return size === 8 ? abi.u64Align : size;
}

/** The C spelling of a type, as documentation shows it: `struct vcpu_info[32]`. */
export function cTypeName(type: CType): string {
  switch (type.kind) {
    case 'prim':
      return type.c;
    case 'array':
      return `${cTypeName(type.of)}[${type.length}]`;
    case 'struct':
      return `${type.def.kind} ${type.def.name}`;
    case 'inline':
      return type.union ? 'union { … }' : 'struct { … }';
  }
}
