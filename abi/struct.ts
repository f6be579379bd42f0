/**
 * One declaration per Xen struct, for both guest ABIs: from a field table this computes the C
 * layout (System V rules for the ABI's data model), builds the `typed-struct` definition, and
 * gives typed views over guest memory. Layout numbers here are computed, and the oracle tests
 * hold them against gcc compiling Xen's own headers.
 */

import { Struct } from 'typed-struct';
import {
  cTypeName,
  primAlign,
  primSize,
  resolveType,
  type ArrayType,
  type CType,
  type FieldDecl,
  type InlineType,
  type PerAbiType,
  type PrimType,
  type PrimWidth,
  type StructRefType,
} from './ctype.js';
import { GUEST_ABIS, type GuestAbi, type GuestAbiName } from './guest-abi.js';
import { AbiRangeError, AbiViewError } from './errors.js';

export interface StructDecl<F extends readonly FieldDecl[]> {
  /** Xen's name, without `struct`/`union`. */
  readonly name: string;
  readonly kind?: 'struct' | 'union';
  /** The public header that declares it, relative to Xen's `include/public/`. */
  readonly header: string;
  readonly doc: string;
  readonly fields: F;
}

export interface FieldLayout {
  /** Dotted path from the struct, e.g. `full_page.frame`. */
  readonly path: string;
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly align: number;
  readonly type: CType;
  readonly cType: string;
  readonly doc: string;
  /** Members of an anonymous struct/union, with offsets from the outer struct. */
  readonly members?: readonly FieldLayout[];
  /** Other names of (part of) these bytes in the headers' anonymous unions; see `FieldDecl.aliases`. */
  readonly aliases?: readonly string[];
}

export type LayoutRow =
  | { readonly kind: 'field'; readonly field: FieldLayout }
  | { readonly kind: 'hole'; readonly offset: number; readonly size: number; readonly within: string }
  | { readonly kind: 'padding'; readonly offset: number; readonly size: number; readonly within: string };

export interface StructLayout {
  readonly name: string;
  readonly kind: 'struct' | 'union';
  readonly abi: GuestAbiName;
  readonly size: number;
  readonly align: number;
  /** Top-level fields in declaration order; anonymous aggregates carry `members`. */
  readonly fields: readonly FieldLayout[];
  /** Every field that is not an anonymous aggregate, dotted, in declaration order. */
  readonly leaves: readonly FieldLayout[];
  /** Every field including anonymous aggregates themselves (what the oracle probes). */
  readonly all: readonly FieldLayout[];
  /** Fields, holes and tail padding in order, as pahole shows them. */
  readonly rows: readonly LayoutRow[];
}

/** A read/write window on a fixed-size array of integers inside a struct. */
export interface IntArrayView<T extends number | bigint> {
  readonly length: number;
  get(index: number): T;
  set(index: number, value: T): void;
  toArray(): T[];
}

type JsOfWidth<W extends PrimWidth> = W extends 8 | 'word' ? bigint : number;

type JsOfArrayElement<E extends CType> =
  E extends PrimType<1>
    ? Buffer
    : E extends PrimType<infer W>
      ? IntArrayView<JsOfWidth<W>>
      : E extends StructRefType<infer D>
        ? readonly ViewOf<D>[]
        : never;

export type JsOf<T> =
  T extends PrimType<infer W>
    ? JsOfWidth<W>
    : T extends ArrayType<infer E>
      ? JsOfArrayElement<E>
      : T extends StructRefType<infer D>
        ? ViewOf<D>
        : T extends InlineType<infer F>
          ? StructView<F>
          : T extends PerAbiType<infer A, infer B>
            ? JsOf<A> | JsOf<B>
            : never;

/** The typed view of a struct: word-wide and 64-bit fields are `bigint`, narrower ones `number`. */
export type StructView<F extends readonly FieldDecl[]> = {
  -readonly [K in F[number] as K['name']]: JsOf<K['type']>;
};

export type ViewOf<D> = D extends StructDef<infer F> ? StructView<F> : Record<string, unknown>;

// typed-struct's constructor type for a definition built at run time.
export interface CompiledStruct {
  readonly baseSize: number;
  new (raw: Buffer): object;
}

/** What every struct definition offers, whatever its fields; registries hold these. */
export interface StructInfo {
  readonly name: string;
  readonly kind: 'struct' | 'union';
  readonly header: string;
  readonly doc: string;
  readonly fields: readonly FieldDecl[];
  layout(abi: GuestAbi): StructLayout;
  sizeOf(abi: GuestAbi): number;
  /**
   * Offset of a field by its dotted path; array elements are addressed by index (`ctrlreg[3]`,
   * `trap_ctxt[14].address`). Throws for an unknown path or an index outside the array.
   */
  offsetOf(abi: GuestAbi, path: string): number;
  /** The `typed-struct` constructor for this ABI; its `baseSize` equals `sizeof`. */
  typedStruct(abi: GuestAbi): CompiledStruct;
  /** A view whose reads and writes land in `memory` at `offset`. */
  view(abi: GuestAbi, memory: Buffer | Uint8Array | ArrayBuffer, offset?: number): object;
}

/** A struct definition whose views are typed from its field table. */
export interface StructDef<F extends readonly FieldDecl[] = readonly FieldDecl[]> extends StructInfo {
  readonly fields: F;
  view(abi: GuestAbi, memory: Buffer | Uint8Array | ArrayBuffer, offset?: number): StructView<F>;
  /** A zeroed buffer of `sizeof` bytes and a view over it. */
  alloc(abi: GuestAbi): { bytes: Buffer; view: StructView<F> };
}

function roundUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

function typeSizeAlign(type: CType, abi: GuestAbi): { size: number; align: number } {
  switch (type.kind) {
    case 'prim':
      return { size: primSize(type, abi), align: primAlign(type, abi) };
    case 'array': {
      const element = typeSizeAlign(type.of, abi);
      return { size: element.size * type.length, align: element.align };
    }
    case 'struct': {
      const layout = type.def.layout(abi);
      return { size: layout.size, align: layout.align };
    }
    case 'inline': {
      const { size, align } = layoutMembers(type.fields, type.union, abi, 0, '');
      return { size, align };
    }
  }
}

interface MemberLayout {
  readonly fields: FieldLayout[];
  readonly size: number;
  readonly align: number;
}

function layoutMembers(
  decls: readonly FieldDecl[],
  union: boolean,
  abi: GuestAbi,
  base: number,
  prefix: string,
): MemberLayout {
  const fields: FieldLayout[] = [];
  let cursor = 0;
  let end = 0;
  let align = 1;
  for (const decl of decls) {
    if (decl.only !== undefined && decl.only !== abi.name) continue;
    const type = resolveType(decl.type, abi);
    const { size, align: fieldAlign } = typeSizeAlign(type, abi);
    const offset = union ? 0 : roundUp(cursor, fieldAlign);
    const path = prefix + decl.name;
    const members =
      type.kind === 'inline'
        ? layoutMembers(type.fields, type.union, abi, base + offset, `${path}.`).fields
        : undefined;
    fields.push(
      Object.freeze({
        path,
        name: decl.name,
        offset: base + offset,
        size,
        align: fieldAlign,
        type,
        cType: cTypeName(type),
        doc: decl.doc,
        ...(members ? { members: Object.freeze(members) } : {}),
        ...(decl.aliases ? { aliases: decl.aliases } : {}),
      }),
    );
    cursor = offset + size;
    end = Math.max(end, cursor);
    align = Math.max(align, fieldAlign);
  }
  return { fields, size: roundUp(end, align), align };
}

function* walk(fields: readonly FieldLayout[]): Generator<FieldLayout> {
  for (const f of fields) {
    yield f;
    if (f.members) yield* walk(f.members);
  }
}

/** Rows of an aggregate: its fields in order, the holes between them and its tail padding. */
function rowsOf(
  fields: readonly FieldLayout[],
  union: boolean,
  start: number,
  size: number,
  within: string,
): LayoutRow[] {
  const rows: LayoutRow[] = [];
  let cursor = start;
  let end = start;
  for (const f of fields) {
    if (!union && f.offset > cursor) rows.push({ kind: 'hole', offset: cursor, size: f.offset - cursor, within });
    if (f.members && f.type.kind === 'inline') {
      rows.push(...rowsOf(f.members, f.type.union, f.offset, f.size, f.path));
    } else {
      rows.push({ kind: 'field', field: f });
    }
    cursor = f.offset + f.size;
    end = Math.max(end, cursor);
  }
  if (start + size > end) rows.push({ kind: 'padding', offset: end, size: start + size - end, within });
  return rows;
}

function computeLayout(decl: StructDecl<readonly FieldDecl[]>, kind: 'struct' | 'union', abi: GuestAbi): StructLayout {
  const { fields, size, align } = layoutMembers(decl.fields, kind === 'union', abi, 0, '');
  const all = [...walk(fields)];
  return Object.freeze({
    name: decl.name,
    kind,
    abi: abi.name,
    size,
    align,
    fields: Object.freeze(fields),
    leaves: Object.freeze(all.filter((f) => f.type.kind !== 'inline')),
    all: Object.freeze(all),
    rows: Object.freeze(rowsOf(fields, kind === 'union', 0, size, decl.name)),
  });
}

function toBuffer(memory: Buffer | Uint8Array | ArrayBuffer): Buffer {
  if (Buffer.isBuffer(memory)) return memory;
  if (memory instanceof ArrayBuffer) return Buffer.from(memory);
  return Buffer.from(memory.buffer, memory.byteOffset, memory.byteLength);
}

function checkedNumber(value: unknown, bytes: number, signed: boolean, path: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new AbiRangeError(path, String(value), bytes, signed);
  }
  const bits = bytes * 8;
  const min = signed ? -(2 ** (bits - 1)) : 0;
  const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  if (value < min || value > max) throw new AbiRangeError(path, String(value), bytes, signed);
  return value;
}

function checkedBigint(value: unknown, bytes: number, signed: boolean, path: string): bigint {
  if (typeof value !== 'bigint') throw new AbiRangeError(path, String(value), bytes, signed);
  const bits = BigInt(bytes * 8);
  const min = signed ? -(1n << (bits - 1n)) : 0n;
  const max = signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
  if (value < min || value > max) throw new AbiRangeError(path, String(value), bytes, signed);
  return value;
}

type Reader = (buf: Buffer, at: number) => number | bigint;
type Writer = (buf: Buffer, at: number, value: unknown) => void;

/** Little-endian accessors for one integer type; writes outside its range throw, never wrap. */
function intAccessors(type: PrimType, abi: GuestAbi, path: string): { read: Reader; write: Writer; size: number } {
  const size = primSize(type, abi);
  const { signed } = type;
  switch (size) {
    case 1:
      return {
        size,
        read: signed ? (b, at) => b.readInt8(at) : (b, at) => b.readUInt8(at),
        write: signed
          ? (b, at, v) => void b.writeInt8(checkedNumber(v, 1, true, path), at)
          : (b, at, v) => void b.writeUInt8(checkedNumber(v, 1, false, path), at),
      };
    case 2:
      return {
        size,
        read: signed ? (b, at) => b.readInt16LE(at) : (b, at) => b.readUInt16LE(at),
        write: signed
          ? (b, at, v) => void b.writeInt16LE(checkedNumber(v, 2, true, path), at)
          : (b, at, v) => void b.writeUInt16LE(checkedNumber(v, 2, false, path), at),
      };
    case 4:
      if (type.width === 'word') {
        // A 4-byte word is still a bigint, so code is the same for both ABIs.
        return {
          size,
          read: (b, at) => BigInt(b.readUInt32LE(at)),
          write: (b, at, v) => void b.writeUInt32LE(Number(checkedBigint(v, 4, false, path)), at),
        };
      }
      return {
        size,
        read: signed ? (b, at) => b.readInt32LE(at) : (b, at) => b.readUInt32LE(at),
        write: signed
          ? (b, at, v) => void b.writeInt32LE(checkedNumber(v, 4, true, path), at)
          : (b, at, v) => void b.writeUInt32LE(checkedNumber(v, 4, false, path), at),
      };
    default:
      return {
        size,
        read: signed ? (b, at) => b.readBigInt64LE(at) : (b, at) => b.readBigUInt64LE(at),
        write: signed
          ? (b, at, v) => void b.writeBigInt64LE(checkedBigint(v, 8, true, path), at)
          : (b, at, v) => void b.writeBigUInt64LE(checkedBigint(v, 8, false, path), at),
      };
  }
}

function intArrayView(buf: Buffer, elem: PrimType, abi: GuestAbi, length: number, path: string): IntArrayView<number | bigint> {
  const { read, write, size } = intAccessors(elem, abi, path);
  const check = (index: number): number => {
    if (!Number.isInteger(index) || index < 0 || index >= length) {
      throw new AbiViewError(`${path}: index ${index} outside [0, ${length})`);
    }
    return index * size;
  };
  return Object.freeze({
    length,
    get: (index: number) => read(buf, check(index)),
    set: (index: number, value: number | bigint) => write(buf, check(index), value),
    toArray: () => Array.from({ length }, (_, i) => read(buf, i * size)),
  });
}

function copyBytesInto(buf: Buffer, value: unknown, path: string): boolean {
  if (!(value instanceof Uint8Array) || value.length !== buf.length) {
    throw new AbiViewError(`${path}: expected ${buf.length} bytes`);
  }
  buf.set(value);
  return true;
}

/**
 * Builds the typed-struct definition of one aggregate from its computed layout. `base` is the
 * aggregate's own offset, since members of an anonymous aggregate carry outer-struct offsets.
 */
function compile(className: string, fields: readonly FieldLayout[], base: number, size: number, abi: GuestAbi): CompiledStruct {
  // typed-struct seeks relative to its current position, so seek by the difference.
  let builder = new Struct(className) as unknown as Struct;
  let position = 0;
  const seekTo = (offset: number): void => {
    if (offset !== position) builder = builder.seek(offset - position) as Struct;
    position = offset;
  };
  for (const f of fields) {
    seekTo(f.offset - base);
    builder = addField(builder, f, abi) as Struct;
    position = f.offset - base + f.size;
  }
  seekTo(size);
  return builder.compile() as unknown as CompiledStruct;
}

function addField(builder: Struct, f: FieldLayout, abi: GuestAbi): unknown {
  const type = f.type;
  const custom = (get: (buf: Buffer) => unknown, set?: (buf: Buffer, value: unknown) => boolean) =>
    set
      ? builder.Custom(f.name, f.size, (_t, buf) => get(buf), (_t, buf, v) => set(buf, v))
      : builder.Custom(f.name, f.size, (_t, buf) => get(buf));
  switch (type.kind) {
    case 'prim': {
      const { read, write } = intAccessors(type, abi, f.path);
      return custom(
        (buf) => read(buf, 0),
        (buf, v) => {
          write(buf, 0, v);
          return true;
        },
      );
    }
    case 'array': {
      const elem = type.of;
      if (elem.kind === 'prim' && primSize(elem, abi) === 1) {
        return custom(
          (buf) => buf,
          (buf, v) => copyBytesInto(buf, v, f.path),
        );
      }
      if (elem.kind === 'prim') return custom((buf) => intArrayView(buf, elem, abi, type.length, f.path));
      if (elem.kind === 'struct') {
        const stride = elem.def.sizeOf(abi);
        return custom((buf) =>
          Object.freeze(Array.from({ length: type.length }, (_, i) => elem.def.view(abi, buf, i * stride))),
        );
      }
      throw new AbiViewError(`${f.path}: arrays of ${cTypeName(elem)} are not supported`);
    }
    case 'struct':
      return custom((buf) => type.def.view(abi, buf));
    case 'inline': {
      const members = f.members ?? [];
      const Inline = compile(f.path, members, f.offset, f.size, abi);
      return custom((buf) => new Inline(buf));
    }
  }
}

/**
 * Offset of a dotted path, descending into named struct fields (`arch.p2m_generation`) and array
 * elements (`ctrlreg[3]`, `trap_ctxt[14].address`, `vcpu_info[1].time.version`).
 */
function fieldAt(layout: StructLayout, abi: GuestAbi, path: string): number | undefined {
  const direct = layout.all.find((f) => f.path === path);
  if (direct) return direct.offset;
  for (const f of layout.all) {
    if (f.type.kind === 'struct' && path.startsWith(`${f.path}.`)) {
      const inner = fieldAt(f.type.def.layout(abi), abi, path.slice(f.path.length + 1));
      if (inner !== undefined) return f.offset + inner;
    }
    if (f.type.kind === 'array' && path.startsWith(`${f.path}[`)) {
      const inner = elementAt(f.type, abi, path.slice(f.path.length));
      if (inner !== undefined) return f.offset + inner;
    }
  }
  return undefined;
}

/** Offset within an array of `[index]` followed by nothing or, for struct elements, `.path`. */
function elementAt(type: ArrayType, abi: GuestAbi, rest: string): number | undefined {
  const m = /^\[(0|[1-9]\d*)\](.*)$/.exec(rest);
  if (!m) return undefined;
  const index = Number(m[1]);
  const tail = m[2]!;
  if (index >= type.length) return undefined;
  const stride = typeSizeAlign(type.of, abi).size;
  if (tail === '') return index * stride;
  if (type.of.kind === 'struct' && tail.startsWith('.')) {
    const inner = fieldAt(type.of.def.layout(abi), abi, tail.slice(1));
    return inner === undefined ? undefined : index * stride + inner;
  }
  if (type.of.kind === 'array' && tail.startsWith('[')) {
    const inner = elementAt(type.of, abi, tail);
    return inner === undefined ? undefined : index * stride + inner;
  }
  return undefined;
}

export function defineStruct<const F extends readonly FieldDecl[]>(decl: StructDecl<F>): StructDef<F> {
  const kind = decl.kind ?? 'struct';
  const layouts = new Map<GuestAbiName, StructLayout>();
  const ctors = new Map<GuestAbiName, CompiledStruct>();
  for (const abi of GUEST_ABIS) {
    const layout = computeLayout(decl, kind, abi);
    layouts.set(abi.name, layout);
    ctors.set(abi.name, compile(decl.name, layout.fields, 0, layout.size, abi));
  }
  const layoutOf = (abi: GuestAbi): StructLayout => {
    const layout = layouts.get(abi.name);
    if (!layout) throw new AbiViewError(`unknown guest ABI ${String(abi.name)}`);
    return layout;
  };
  const def: StructDef<F> = {
    name: decl.name,
    kind,
    header: decl.header,
    doc: decl.doc,
    fields: decl.fields,
    layout: layoutOf,
    sizeOf: (abi) => layoutOf(abi).size,
    offsetOf(abi, path) {
      const found = fieldAt(layoutOf(abi), abi, path);
      if (found === undefined) throw new AbiViewError(`${decl.name} has no field ${path} on ${abi.name}`);
      return found;
    },
    typedStruct: (abi) => {
      layoutOf(abi);
      return ctors.get(abi.name)!;
    },
    view(abi, memory, offset = 0) {
      const size = layoutOf(abi).size;
      const buf = toBuffer(memory);
      if (!Number.isInteger(offset) || offset < 0 || offset + size > buf.length) {
        throw new AbiViewError(
          `${decl.name} (${size} bytes) at offset ${offset} does not fit in ${buf.length} bytes`,
        );
      }
      const Ctor = ctors.get(abi.name)!;
      return new Ctor(buf.subarray(offset, offset + size)) as StructView<F>;
    },
    alloc(abi) {
      const bytes = Buffer.alloc(layoutOf(abi).size);
      return { bytes, view: def.view(abi, bytes) };
    },
  };
  return Object.freeze(def);
}
