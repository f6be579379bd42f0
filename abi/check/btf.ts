/**
 * A reader for BTF, the BPF Type Format (Linux `Documentation/bpf/btf.rst`): the compact type
 * information a kernel built with CONFIG_DEBUG_INFO_BTF carries in its `.BTF` section and exposes at
 * `/sys/kernel/btf/vmlinux`, and that `pahole -J` adds to an object built with `-g`.
 *
 * Layout: a header (magic 0xeB9F, version 1, flags, hdr_len, then type_off/type_len and
 * str_off/str_len relative to the end of the header), a type section of variable-length records
 * (type ids 1, 2, … in order; id 0 is void) and a string section of NUL-terminated names. Every
 * record starts with 12 bytes {name_off, info, size|type}; info holds vlen (bits 0-15), kind
 * (bits 24-28) and kind_flag (bit 31); what follows depends on the kind.
 *
 * The reader parses every kind (1 INT … 19 ENUM64). A kind it does not know is skipped by the size
 * the file declares for it in a kind layout section (the header fields after str_off/str_len:
 * kind_layout_off, kind_layout_len; one {flags, info_sz, elem_sz} entry of one byte each per kind);
 * without such a declaration an unknown kind is an error, since its size cannot be known.
 *
 * Malformed input never hangs or grows memory beyond the file's size: the header, every record,
 * every type id and string offset is checked against the section bounds, reference cycles are found
 * by one iterative pass, and the per-type tables are typed arrays sized by the type section.
 */

import { BtfFormatError } from './errors.js';

export const BTF_MAGIC = 0xeb9f;
export const BTF_VERSION = 1;
/** Bytes of the header every BTF version 1 file has; a kind layout needs 8 more. */
export const BTF_HEADER_MIN = 24;
export const BTF_TYPE_HEADER = 12;

export const BTF_KIND = Object.freeze({
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const);

export const BTF_KIND_NAMES: readonly string[] = Object.freeze([
  'UNKN', 'INT', 'PTR', 'ARRAY', 'STRUCT', 'UNION', 'ENUM', 'FWD', 'TYPEDEF', 'VOLATILE', 'CONST',
  'RESTRICT', 'FUNC', 'FUNC_PROTO', 'VAR', 'DATASEC', 'FLOAT', 'DECL_TAG', 'TYPE_TAG', 'ENUM64',
]);

/** The highest kind this reader knows. */
export const BTF_MAX_KNOWN_KIND = 19;

/** Bytes after the 12-byte record header, for each known kind: fixed part, then per vlen element. */
const KIND_EXTRA: readonly (readonly [fixed: number, perElement: number])[] = [
  [0, 0], // 0 (invalid)
  [4, 0], // INT: encoding/offset/bits
  [0, 0], // PTR
  [12, 0], // ARRAY: type, index_type, nelems
  [0, 12], // STRUCT: name_off, type, offset per member
  [0, 12], // UNION
  [0, 8], // ENUM: name_off, val
  [0, 0], // FWD
  [0, 0], // TYPEDEF
  [0, 0], // VOLATILE
  [0, 0], // CONST
  [0, 0], // RESTRICT
  [0, 0], // FUNC
  [0, 8], // FUNC_PROTO: name_off, type per parameter
  [4, 0], // VAR: linkage
  [0, 12], // DATASEC: type, offset, size per variable
  [0, 0], // FLOAT
  [4, 0], // DECL_TAG: component_idx
  [0, 0], // TYPE_TAG
  [0, 12], // ENUM64: name_off, val_lo32, val_hi32
];

/** Bytes of one kind layout entry: flags, info_sz, elem_sz (u8 each). */
export const BTF_KIND_LAYOUT_ENTRY = 3;

export const BTF_INT_SIGNED = 1;
export const BTF_INT_CHAR = 2;
export const BTF_INT_BOOL = 4;

export interface BtfHeader {
  readonly littleEndian: boolean;
  readonly version: number;
  readonly flags: number;
  readonly hdrLen: number;
  readonly typeOff: number;
  readonly typeLen: number;
  readonly strOff: number;
  readonly strLen: number;
  /** Present when the header is long enough to carry a kind layout section (may be empty). */
  readonly kindLayoutOff?: number;
  readonly kindLayoutLen?: number;
}

export interface BtfMember {
  readonly name: string;
  readonly type: number;
  /** Offset from the start of the struct, in bits. */
  readonly bitOffset: number;
  /** Width of a bitfield in bits; 0 for an ordinary member. */
  readonly bitfieldSize: number;
}

/** One type record, decoded in full (for tools and tests; the checks use the raw accessors). */
export type BtfType =
  | { readonly id: number; readonly kind: 'INT'; readonly name: string; readonly size: number; readonly encoding: number; readonly bitOffset: number; readonly bits: number }
  | { readonly id: number; readonly kind: 'PTR' | 'TYPEDEF' | 'VOLATILE' | 'CONST' | 'RESTRICT' | 'TYPE_TAG'; readonly name: string; readonly type: number }
  | { readonly id: number; readonly kind: 'ARRAY'; readonly name: string; readonly type: number; readonly indexType: number; readonly nelems: number }
  | { readonly id: number; readonly kind: 'STRUCT' | 'UNION'; readonly name: string; readonly size: number; readonly members: readonly BtfMember[] }
  | { readonly id: number; readonly kind: 'ENUM'; readonly name: string; readonly size: number; readonly signed: boolean; readonly values: readonly { name: string; value: number }[] }
  | { readonly id: number; readonly kind: 'ENUM64'; readonly name: string; readonly size: number; readonly signed: boolean; readonly values: readonly { name: string; value: bigint }[] }
  | { readonly id: number; readonly kind: 'FWD'; readonly name: string; readonly union: boolean }
  | { readonly id: number; readonly kind: 'FUNC'; readonly name: string; readonly type: number; readonly linkage: number }
  | { readonly id: number; readonly kind: 'FUNC_PROTO'; readonly name: string; readonly returnType: number; readonly params: readonly { name: string; type: number }[] }
  | { readonly id: number; readonly kind: 'VAR'; readonly name: string; readonly type: number; readonly linkage: number }
  | { readonly id: number; readonly kind: 'DATASEC'; readonly name: string; readonly size: number; readonly vars: readonly { type: number; offset: number; size: number }[] }
  | { readonly id: number; readonly kind: 'FLOAT'; readonly name: string; readonly size: number }
  | { readonly id: number; readonly kind: 'DECL_TAG'; readonly name: string; readonly type: number; readonly componentIdx: number }
  | { readonly id: number; readonly kind: 'UNKNOWN'; readonly name: string; readonly kindNumber: number; readonly vlen: number };

export interface ParseBtfOptions {
  /** Where `bytes` starts in the file, so errors carry file offsets (e.g. a `.BTF` section's offset). */
  readonly fileOffset?: number;
}

/** Parsed BTF over the caller's bytes (not copied). */
export class Btf {
  /** Type ids are 1..typeCount. */
  readonly typeCount: number;
  /** Types the reader skipped because their kind is unknown to it, by kind number. */
  readonly unknownKinds: ReadonlyMap<number, number>;
  private readonly view: DataView;
  private readonly strStart: number;
  private readonly strEnd: number;
  /** resolve() results plus one (0: not yet known), so long typedef chains are walked once. */
  private readonly resolved: Uint32Array;
  /** byteSize() results per pointer size (NaN: not yet known; -1: no size). */
  private readonly sizes = new Map<number, Float64Array>();

  /** @internal use parseBtf */
  constructor(
    readonly bytes: Uint8Array,
    readonly header: BtfHeader,
    readonly fileOffset: number,
    typeCount: number,
    private readonly recOff: Uint32Array,
    private readonly infos: Uint32Array,
    private readonly sizeTypes: Uint32Array,
    private readonly nameOffs: Uint32Array,
    unknownKinds: Map<number, number>,
  ) {
    this.typeCount = typeCount;
    this.unknownKinds = unknownKinds;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.strStart = header.hdrLen + header.strOff;
    this.strEnd = this.strStart + header.strLen;
    this.resolved = new Uint32Array(typeCount + 1);
  }

  private u32(at: number): number {
    return this.view.getUint32(at, this.header.littleEndian);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 1 || id > this.typeCount) {
      throw new RangeError(`BTF type id ${id} is not in 1..${this.typeCount}`);
    }
  }

  /** File offset of a type's record. */
  fileOffsetOf(id: number): number {
    this.checkId(id);
    return this.fileOffset + this.recOff[id]!;
  }

  /** The kind number (1..19, or an unknown kind's number); 0 for id 0 (void). */
  kind(id: number): number {
    return id === 0 ? 0 : (this.infos[id]! >>> 24) & 0x1f;
  }

  kindName(id: number): string {
    const k = this.kind(id);
    return id === 0 ? 'void' : (BTF_KIND_NAMES[k] ?? `kind ${k}`);
  }

  vlen(id: number): number {
    return this.infos[id]! & 0xffff;
  }

  kindFlag(id: number): boolean {
    return this.infos[id]! >>> 31 === 1;
  }

  /** The size field (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC) or referenced type (the rest). */
  sizeOrType(id: number): number {
    return this.sizeTypes[id]!;
  }

  /** A string of the string section by its offset (checked at parse time to lie inside it). */
  str(offset: number): string {
    const start = this.strStart + offset;
    const end = this.bytes.indexOf(0, start);
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + start, (end === -1 ? this.strEnd : end) - start).toString('utf8');
  }

  name(id: number): string {
    return id === 0 ? '' : this.str(this.nameOffs[id]!);
  }

  /** Whether the name of `id` is exactly `name`, compared in place without decoding. */
  private nameIs(id: number, name: Uint8Array): boolean {
    const start = this.strStart + this.nameOffs[id]!;
    const b = this.bytes;
    if (start + name.length >= this.strEnd) return false;
    for (let i = 0; i < name.length; i++) if (b[start + i] !== name[i]) return false;
    return b[start + name.length] === 0;
  }

  /** Ids of the types of the given kinds whose name is one of `names`, by name, in id order. */
  findNamed(names: Iterable<string>, kinds: readonly number[]): Map<string, number[]> {
    const wanted = [...new Set(names)].filter((n) => n !== '').map((n) => ({ name: n, bytes: Buffer.from(n, 'utf8') }));
    const out = new Map<string, number[]>();
    const kindMask = kinds.reduce((m, k) => m | (1 << k), 0);
    const firstBytes = new Set(wanted.map((w) => w.bytes[0]!));
    const b = this.bytes;
    for (let id = 1; id <= this.typeCount; id++) {
      if (((kindMask >>> ((this.infos[id]! >>> 24) & 0x1f)) & 1) === 0) continue;
      const nameOff = this.nameOffs[id]!;
      if (nameOff === 0 || !firstBytes.has(b[this.strStart + nameOff]!)) continue;
      for (const w of wanted) {
        if (this.nameIs(id, w.bytes)) {
          const list = out.get(w.name);
          if (list) list.push(id);
          else out.set(w.name, [id]);
          break;
        }
      }
    }
    return out;
  }

  /** Follows typedefs and qualifiers (const, volatile, restrict, type tags) to the type they name. */
  resolve(id: number): number {
    const isLink = (k: number): boolean =>
      k === BTF_KIND.TYPEDEF || k === BTF_KIND.VOLATILE || k === BTF_KIND.CONST || k === BTF_KIND.RESTRICT || k === BTF_KIND.TYPE_TAG;
    let current = id;
    let steps = 0;
    while (current !== 0 && this.resolved[current] === 0 && isLink(this.kind(current))) {
      current = this.sizeTypes[current]!;
      // Unreachable for parsed BTF: parseBtf rejects reference cycles.
      if (++steps > this.typeCount) throw new BtfFormatError(`type id ${id} does not resolve (a reference cycle)`, this.fileOffsetOf(id));
    }
    const target = current !== 0 && this.resolved[current] !== 0 ? this.resolved[current]! - 1 : current;
    // Remember the answer for every link of the chain.
    for (let link = id; link !== current; link = this.sizeTypes[link]!) this.resolved[link] = target + 1;
    if (current !== 0) this.resolved[current] = target + 1;
    return target;
  }

  /** Bytes a value of this type occupies; pointers take `pointerSize`. undefined for void, functions, unknown kinds. */
  byteSize(id: number, pointerSize: number): number | undefined {
    let cache = this.sizes.get(pointerSize);
    if (!cache) {
      cache = new Float64Array(this.typeCount + 1).fill(Number.NaN);
      this.sizes.set(pointerSize, cache);
    }
    const known = cache[id]!;
    if (!Number.isNaN(known)) return known < 0 ? undefined : known;
    // Walk down nested arrays, then fill the cache back up (no recursion: chains may be long).
    const chain: number[] = [];
    let current = this.resolve(id);
    let base: number | undefined;
    for (;;) {
      const cached = current === 0 ? -1 : cache[current]!;
      if (!Number.isNaN(cached)) {
        base = cached < 0 ? undefined : cached;
        break;
      }
      const k = this.kind(current);
      if (k === BTF_KIND.ARRAY) {
        chain.push(current);
        current = this.resolve(this.u32(this.recOff[current]! + BTF_TYPE_HEADER));
        if (chain.length > this.typeCount) throw new BtfFormatError(`type id ${id} does not resolve (a reference cycle)`, this.fileOffsetOf(id));
        continue;
      }
      base =
        k === BTF_KIND.INT || k === BTF_KIND.STRUCT || k === BTF_KIND.UNION || k === BTF_KIND.ENUM || k === BTF_KIND.ENUM64 || k === BTF_KIND.FLOAT || k === BTF_KIND.DATASEC
          ? this.sizeTypes[current]!
          : k === BTF_KIND.PTR
            ? pointerSize
            : undefined;
      cache[current] = base ?? -1;
      break;
    }
    let size = base;
    for (let i = chain.length - 1; i >= 0; i--) {
      const a = chain[i]!;
      size = size === undefined ? undefined : size * this.u32(this.recOff[a]! + BTF_TYPE_HEADER + 8);
      cache[a] = size ?? -1;
    }
    cache[id] = size ?? -1;
    return size;
  }

  /** INT encoding: BTF_INT_SIGNED/CHAR/BOOL bits, bit offset and width. */
  intInfo(id: number): { encoding: number; bitOffset: number; bits: number } {
    const v = this.u32(this.recOff[id]! + BTF_TYPE_HEADER);
    return { encoding: (v >>> 24) & 0x0f, bitOffset: (v >>> 16) & 0xff, bits: v & 0xff };
  }

  arrayInfo(id: number): { type: number; indexType: number; nelems: number } {
    const at = this.recOff[id]! + BTF_TYPE_HEADER;
    return { type: this.u32(at), indexType: this.u32(at + 4), nelems: this.u32(at + 8) };
  }

  /** Members of a STRUCT or UNION; with kind_flag set, offsets carry the bitfield size in bits 24-31. */
  members(id: number): BtfMember[] {
    const n = this.vlen(id);
    const flag = this.kindFlag(id);
    const out: BtfMember[] = new Array<BtfMember>(n);
    let at = this.recOff[id]! + BTF_TYPE_HEADER;
    for (let i = 0; i < n; i++, at += 12) {
      const off = this.u32(at + 8);
      out[i] = {
        name: this.str(this.u32(at)),
        type: this.u32(at + 4),
        bitOffset: flag ? off & 0xffffff : off,
        bitfieldSize: flag ? off >>> 24 : 0,
      };
    }
    return out;
  }

  /** The whole record of one type, decoded. */
  type(id: number): BtfType {
    this.checkId(id);
    const name = this.name(id);
    const st = this.sizeTypes[id]!;
    const at = this.recOff[id]! + BTF_TYPE_HEADER;
    const n = this.vlen(id);
    switch (this.kind(id)) {
      case BTF_KIND.INT:
        return { id, kind: 'INT', name, size: st, ...this.intInfo(id) };
      case BTF_KIND.PTR:
        return { id, kind: 'PTR', name, type: st };
      case BTF_KIND.TYPEDEF:
        return { id, kind: 'TYPEDEF', name, type: st };
      case BTF_KIND.VOLATILE:
        return { id, kind: 'VOLATILE', name, type: st };
      case BTF_KIND.CONST:
        return { id, kind: 'CONST', name, type: st };
      case BTF_KIND.RESTRICT:
        return { id, kind: 'RESTRICT', name, type: st };
      case BTF_KIND.TYPE_TAG:
        return { id, kind: 'TYPE_TAG', name, type: st };
      case BTF_KIND.ARRAY:
        return { id, kind: 'ARRAY', name, ...this.arrayInfo(id) };
      case BTF_KIND.STRUCT:
        return { id, kind: 'STRUCT', name, size: st, members: this.members(id) };
      case BTF_KIND.UNION:
        return { id, kind: 'UNION', name, size: st, members: this.members(id) };
      case BTF_KIND.ENUM: {
        const signed = this.kindFlag(id);
        const values = Array.from({ length: n }, (_, i) => {
          const raw = this.u32(at + i * 8 + 4);
          return { name: this.str(this.u32(at + i * 8)), value: signed ? raw | 0 : raw };
        });
        return { id, kind: 'ENUM', name, size: st, signed, values };
      }
      case BTF_KIND.ENUM64: {
        const signed = this.kindFlag(id);
        const values = Array.from({ length: n }, (_, i) => {
          const raw = (BigInt(this.u32(at + i * 12 + 8)) << 32n) | BigInt(this.u32(at + i * 12 + 4));
          return { name: this.str(this.u32(at + i * 12)), value: signed ? BigInt.asIntN(64, raw) : raw };
        });
        return { id, kind: 'ENUM64', name, size: st, signed, values };
      }
      case BTF_KIND.FWD:
        return { id, kind: 'FWD', name, union: this.kindFlag(id) };
      case BTF_KIND.FUNC:
        return { id, kind: 'FUNC', name, type: st, linkage: n };
      case BTF_KIND.FUNC_PROTO:
        return {
          id,
          kind: 'FUNC_PROTO',
          name,
          returnType: st,
          params: Array.from({ length: n }, (_, i) => ({ name: this.str(this.u32(at + i * 8)), type: this.u32(at + i * 8 + 4) })),
        };
      case BTF_KIND.VAR:
        return { id, kind: 'VAR', name, type: st, linkage: this.u32(at) };
      case BTF_KIND.DATASEC:
        return {
          id,
          kind: 'DATASEC',
          name,
          size: st,
          vars: Array.from({ length: n }, (_, i) => ({ type: this.u32(at + i * 12), offset: this.u32(at + i * 12 + 4), size: this.u32(at + i * 12 + 8) })),
        };
      case BTF_KIND.FLOAT:
        return { id, kind: 'FLOAT', name, size: st };
      case BTF_KIND.DECL_TAG:
        return { id, kind: 'DECL_TAG', name, type: st, componentIdx: this.u32(at) | 0 };
      default:
        return { id, kind: 'UNKNOWN', name, kindNumber: this.kind(id), vlen: n };
    }
  }
}

export function isRawBtf(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && ((bytes[0] === 0x9f && bytes[1] === 0xeb) || (bytes[0] === 0xeb && bytes[1] === 0x9f));
}

/** Types that are references to one other type through `size|type`. */
function isRefKind(kind: number): boolean {
  return (
    kind === BTF_KIND.PTR ||
    kind === BTF_KIND.TYPEDEF ||
    kind === BTF_KIND.VOLATILE ||
    kind === BTF_KIND.CONST ||
    kind === BTF_KIND.RESTRICT ||
    kind === BTF_KIND.FUNC ||
    kind === BTF_KIND.VAR ||
    kind === BTF_KIND.DECL_TAG ||
    kind === BTF_KIND.TYPE_TAG
  );
}

/** Parses and validates BTF; throws BtfFormatError, with the file offset, for anything malformed. */
export function parseBtf(bytes: Uint8Array, options: ParseBtfOptions = {}): Btf {
  const base = options.fileOffset ?? 0;
  const fail = (what: string, at: number): never => {
    throw new BtfFormatError(what, base + at);
  };
  if (bytes.length < 8) fail(`truncated BTF header: ${bytes.length} bytes, need at least ${BTF_HEADER_MIN}`, 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let le: boolean;
  if (view.getUint16(0, true) === BTF_MAGIC) le = true;
  else if (view.getUint16(0, false) === BTF_MAGIC) le = false;
  else return fail(`bad BTF magic 0x${view.getUint16(0, true).toString(16).padStart(4, '0')} (expected 0xeb9f)`, 0);
  const u32 = (at: number): number => view.getUint32(at, le);
  const version = bytes[2]!;
  if (version !== BTF_VERSION) fail(`unsupported BTF version ${version} (expected ${BTF_VERSION})`, 2);
  const hdrLen = u32(4);
  if (hdrLen < BTF_HEADER_MIN) fail(`BTF header length ${hdrLen} is below ${BTF_HEADER_MIN}`, 4);
  if (hdrLen > bytes.length) fail(`BTF header length ${hdrLen} is past the end of the data (${bytes.length} bytes)`, 4);
  const typeOff = u32(8);
  const typeLen = u32(12);
  const strOff = u32(16);
  const strLen = u32(20);
  const hasLayout = hdrLen >= BTF_HEADER_MIN + 8;
  const kindLayoutOff = hasLayout ? u32(24) : 0;
  const kindLayoutLen = hasLayout ? u32(28) : 0;
  const header: BtfHeader = {
    littleEndian: le,
    version,
    flags: bytes[3]!,
    hdrLen,
    typeOff,
    typeLen,
    strOff,
    strLen,
    ...(hasLayout ? { kindLayoutOff, kindLayoutLen } : {}),
  };
  const dataLen = bytes.length - hdrLen;
  if (typeOff % 4 !== 0) fail(`BTF type section offset ${typeOff} is not 4-byte aligned`, 8);
  if (typeOff + typeLen > dataLen) fail(`BTF type section (${typeLen} bytes at ${typeOff}) runs past the end of the data (${dataLen} bytes after the header)`, 8);
  if (strOff + strLen > dataLen) fail(`BTF string section (${strLen} bytes at ${strOff}) runs past the end of the data (${dataLen} bytes after the header)`, 16);
  if (typeLen > 0 && strLen > 0 && typeOff < strOff + strLen && strOff < typeOff + typeLen) {
    fail(`BTF type section [${typeOff}, ${typeOff + typeLen}) overlaps the string section [${strOff}, ${strOff + strLen})`, 8);
  }
  if (strLen === 0) fail('BTF string section is empty (it must hold at least the empty name)', 20);
  const strStart = hdrLen + strOff;
  if (bytes[strStart] !== 0) fail('BTF string section does not start with the empty name (a NUL byte)', strStart);
  if (bytes[strStart + strLen - 1] !== 0) fail('BTF string section does not end with a NUL byte', strStart + strLen - 1);

  // The sizes a kind layout section declares, for kinds this reader does not know.
  let layout: Uint8Array | undefined;
  if (hasLayout && kindLayoutLen > 0) {
    if (kindLayoutOff + kindLayoutLen > dataLen) fail(`BTF kind layout section (${kindLayoutLen} bytes at ${kindLayoutOff}) runs past the end of the data`, 24);
    if (kindLayoutLen % BTF_KIND_LAYOUT_ENTRY !== 0) fail(`BTF kind layout section length ${kindLayoutLen} is not a multiple of ${BTF_KIND_LAYOUT_ENTRY}`, 28);
    layout = bytes.subarray(hdrLen + kindLayoutOff, hdrLen + kindLayoutOff + kindLayoutLen);
  }
  const layoutKinds = layout ? layout.length / BTF_KIND_LAYOUT_ENTRY : 0;

  const typeStart = hdrLen + typeOff;
  const typeEnd = typeStart + typeLen;
  // Every record is at least 12 bytes: the tables cannot outgrow the type section.
  const maxTypes = Math.floor(typeLen / BTF_TYPE_HEADER);
  const recOff = new Uint32Array(maxTypes + 1);
  const infos = new Uint32Array(maxTypes + 1);
  const sizeTypes = new Uint32Array(maxTypes + 1);
  const nameOffs = new Uint32Array(maxTypes + 1);
  const unknownKinds = new Map<number, number>();
  let count = 0;
  for (let pos = typeStart; pos < typeEnd; ) {
    const id = count + 1;
    if (typeEnd - pos < BTF_TYPE_HEADER) fail(`truncated BTF type record: type id ${id} needs ${BTF_TYPE_HEADER} bytes, ${typeEnd - pos} left in the type section`, pos);
    const nameOff = u32(pos);
    const info = u32(pos + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    let extra: number;
    if (kind >= 1 && kind <= BTF_MAX_KNOWN_KIND) {
      const [fixed, per] = KIND_EXTRA[kind]!;
      extra = fixed + vlen * per;
    } else if (kind !== 0 && kind < layoutKinds) {
      extra = layout![kind * BTF_KIND_LAYOUT_ENTRY + 1]! + vlen * layout![kind * BTF_KIND_LAYOUT_ENTRY + 2]!;
      unknownKinds.set(kind, (unknownKinds.get(kind) ?? 0) + 1);
    } else if (kind === 0) {
      return fail(`type id ${id} has kind 0 (UNKN), which no type may have`, pos + 4);
    } else {
      return fail(
        `type id ${id} has kind ${kind}, unknown to this reader (it knows 1..${BTF_MAX_KNOWN_KIND}), and the BTF declares no kind layout to skip it by`,
        pos + 4,
      );
    }
    if (extra > typeEnd - pos - BTF_TYPE_HEADER) {
      fail(
        `truncated BTF type record: type id ${id} (${BTF_KIND_NAMES[kind] ?? `kind ${kind}`}, vlen ${vlen}) needs ${BTF_TYPE_HEADER + extra} bytes, ${typeEnd - pos} left in the type section`,
        pos,
      );
    }
    if (nameOff >= strLen) fail(`type id ${id}: name offset ${nameOff} is past the string section (${strLen} bytes)`, pos);
    count = id;
    recOff[id] = pos;
    infos[id] = info;
    sizeTypes[id] = u32(pos + 8);
    nameOffs[id] = nameOff;
    pos += BTF_TYPE_HEADER + extra;
  }

  // Every type id and string offset inside the records.
  const checkType = (owner: number, ref: number, at: number, what: string): void => {
    if (ref > count) fail(`type id ${owner} (${BTF_KIND_NAMES[(infos[owner]! >>> 24) & 0x1f]}): ${what} type id ${ref} is out of range (the BTF has ${count} types)`, at);
  };
  const checkName = (owner: number, off: number, at: number): void => {
    if (off >= strLen) fail(`type id ${owner}: name offset ${off} is past the string section (${strLen} bytes)`, at);
  };
  for (let id = 1; id <= count; id++) {
    const pos = recOff[id]!;
    const info = infos[id]!;
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const st = sizeTypes[id]!;
    const at = pos + BTF_TYPE_HEADER;
    if (isRefKind(kind)) {
      checkType(id, st, pos + 8, 'referenced');
      if (kind === BTF_KIND.FUNC && st !== 0 && ((infos[st]! >>> 24) & 0x1f) !== BTF_KIND.FUNC_PROTO) {
        fail(`type id ${id} (FUNC) refers to type id ${st}, which is not a FUNC_PROTO`, pos + 8);
      }
      continue;
    }
    switch (kind) {
      case BTF_KIND.INT: {
        const v = u32(at);
        const bits = v & 0xff;
        const offset = (v >>> 16) & 0xff;
        if (st === 0 || st > 16 || (st & (st - 1)) !== 0) fail(`type id ${id} (INT) has size ${st} (expected 1, 2, 4, 8 or 16)`, pos + 8);
        if (bits > 128 || offset + bits > st * 8) fail(`type id ${id} (INT) has ${bits} bits at bit ${offset}, more than its ${st} bytes hold`, at);
        break;
      }
      case BTF_KIND.ARRAY:
        checkType(id, u32(at), at, 'element');
        checkType(id, u32(at + 4), at + 4, 'index');
        break;
      case BTF_KIND.STRUCT:
      case BTF_KIND.UNION:
        for (let i = 0, m = at; i < vlen; i++, m += 12) {
          checkName(id, u32(m), m);
          checkType(id, u32(m + 4), m + 4, `member ${i}`);
        }
        break;
      case BTF_KIND.ENUM:
        for (let i = 0, m = at; i < vlen; i++, m += 8) checkName(id, u32(m), m);
        break;
      case BTF_KIND.ENUM64:
        for (let i = 0, m = at; i < vlen; i++, m += 12) checkName(id, u32(m), m);
        break;
      case BTF_KIND.FUNC_PROTO:
        checkType(id, st, pos + 8, 'return');
        for (let i = 0, m = at; i < vlen; i++, m += 8) {
          checkName(id, u32(m), m);
          checkType(id, u32(m + 4), m + 4, `parameter ${i}`);
        }
        break;
      case BTF_KIND.DATASEC:
        for (let i = 0, m = at; i < vlen; i++, m += 12) checkType(id, u32(m), m, `variable ${i}`);
        break;
      default:
        break;
    }
  }

  findCycles(count, recOff, infos, sizeTypes, u32, fail);
  return new Btf(bytes, header, base, count, recOff, infos, sizeTypes, nameOffs, unknownKinds);
}

/**
 * Rejects reference cycles through the edges that define a type's value: typedefs, qualifiers and
 * type tags, array elements, struct and union members, variables and declaration tags. Pointers,
 * function prototypes and data sections do not count (a struct may point to itself). One iterative
 * depth-first pass; each type is entered once, so it ends in time linear in the types and members.
 */
function findCycles(
  count: number,
  recOff: Uint32Array,
  infos: Uint32Array,
  sizeTypes: Uint32Array,
  u32: (at: number) => number,
  fail: (what: string, at: number) => never,
): void {
  const state = new Uint8Array(count + 1); // 0 new, 1 on the path, 2 done
  const stackId = new Uint32Array(count + 1);
  const stackEdge = new Uint32Array(count + 1);
  const edges = (id: number): number => {
    const kind = (infos[id]! >>> 24) & 0x1f;
    if (kind === BTF_KIND.STRUCT || kind === BTF_KIND.UNION) return infos[id]! & 0xffff;
    if (kind === BTF_KIND.ARRAY) return 1;
    if (kind === BTF_KIND.PTR || kind === BTF_KIND.FUNC) return 0;
    return isRefKind(kind) ? 1 : 0;
  };
  const target = (id: number, edge: number): number => {
    const kind = (infos[id]! >>> 24) & 0x1f;
    const at = recOff[id]! + BTF_TYPE_HEADER;
    if (kind === BTF_KIND.STRUCT || kind === BTF_KIND.UNION) return u32(at + edge * 12 + 4);
    if (kind === BTF_KIND.ARRAY) return u32(at);
    return sizeTypes[id]!;
  };
  for (let root = 1; root <= count; root++) {
    if (state[root] !== 0) continue;
    let sp = 0;
    stackId[sp] = root;
    stackEdge[sp] = 0;
    sp++;
    state[root] = 1;
    while (sp > 0) {
      const id = stackId[sp - 1]!;
      const edge = stackEdge[sp - 1]!;
      if (edge < edges(id)) {
        stackEdge[sp - 1] = edge + 1;
        const t = target(id, edge);
        if (t === 0 || state[t] === 2) continue;
        if (state[t] === 1) {
          fail(
            `reference cycle: type id ${id} (${BTF_KIND_NAMES[(infos[id]! >>> 24) & 0x1f]}) refers to type id ${t}, which refers back to it`,
            recOff[id]!,
          );
        }
        state[t] = 1;
        stackId[sp] = t;
        stackEdge[sp] = 0;
        sp++;
      } else {
        state[id] = 2;
        sp--;
      }
    }
  }
}
