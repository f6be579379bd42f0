/**
 * Builds BTF (and a minimal ELF file around it) byte by byte, for tests that need every kind,
 * deliberate corruption or a fuzzing seed without a compiler. Written from the BTF format as
 * documented (Documentation/bpf/btf.rst), independently of the reader under test.
 */

import { BTF_KIND } from '../../abi/check/btf.js';

export interface MemberSpec {
  readonly name: string;
  readonly type: number;
  readonly bitOffset: number;
  readonly bitfieldSize?: number;
}

export class BtfBuilder {
  private readonly strings: Buffer[] = [Buffer.from([0])];
  private strLen = 1;
  private readonly stringIndex = new Map<string, number>([['', 0]]);
  private readonly records: Buffer[] = [];

  /** Offset of `name` in the string section, adding it once. */
  str(name: string): number {
    const known = this.stringIndex.get(name);
    if (known !== undefined) return known;
    const off = this.strLen;
    const bytes = Buffer.concat([Buffer.from(name, 'utf8'), Buffer.from([0])]);
    this.strings.push(bytes);
    this.strLen += bytes.length;
    this.stringIndex.set(name, off);
    return off;
  }

  /** Adds one record; returns its type id. `words` are the u32s after the 12-byte header. */
  raw(kind: number, name: string, vlen: number, sizeOrType: number, words: readonly number[] = [], kindFlag = false): number {
    const buf = Buffer.alloc(12 + words.length * 4);
    buf.writeUInt32LE(this.str(name), 0);
    buf.writeUInt32LE((((kindFlag ? 1 : 0) << 31) | ((kind & 0x1f) << 24) | (vlen & 0xffff)) >>> 0, 4);
    buf.writeUInt32LE(sizeOrType >>> 0, 8);
    words.forEach((w, i) => buf.writeUInt32LE(w >>> 0, 12 + i * 4));
    this.records.push(buf);
    return this.records.length;
  }

  int(name: string, size: number, encoding = 0, bits = size * 8, bitOffset = 0): number {
    return this.raw(BTF_KIND.INT, name, 0, size, [(encoding << 24) | (bitOffset << 16) | bits]);
  }
  ptr(type: number): number {
    return this.raw(BTF_KIND.PTR, '', 0, type);
  }
  array(type: number, indexType: number, nelems: number): number {
    return this.raw(BTF_KIND.ARRAY, '', 0, 0, [type, indexType, nelems]);
  }
  struct(name: string, size: number, members: readonly MemberSpec[], union = false): number {
    const kindFlag = members.some((m) => (m.bitfieldSize ?? 0) > 0);
    const words = members.flatMap((m) => [this.str(m.name), m.type, kindFlag ? ((m.bitfieldSize ?? 0) << 24) | m.bitOffset : m.bitOffset]);
    return this.raw(union ? BTF_KIND.UNION : BTF_KIND.STRUCT, name, members.length, size, words, kindFlag);
  }
  enum(name: string, size: number, values: readonly [string, number][], signed = false): number {
    return this.raw(BTF_KIND.ENUM, name, values.length, size, values.flatMap(([n, v]) => [this.str(n), v]), signed);
  }
  enum64(name: string, size: number, values: readonly [string, bigint][]): number {
    return this.raw(BTF_KIND.ENUM64, name, values.length, size, values.flatMap(([n, v]) => [this.str(n), Number(v & 0xffffffffn), Number(v >> 32n)]));
  }
  fwd(name: string, union = false): number {
    return this.raw(BTF_KIND.FWD, name, 0, 0, [], union);
  }
  typedef(name: string, type: number): number {
    return this.raw(BTF_KIND.TYPEDEF, name, 0, type);
  }
  volatile(type: number): number {
    return this.raw(BTF_KIND.VOLATILE, '', 0, type);
  }
  const(type: number): number {
    return this.raw(BTF_KIND.CONST, '', 0, type);
  }
  restrict(type: number): number {
    return this.raw(BTF_KIND.RESTRICT, '', 0, type);
  }
  funcProto(ret: number, params: readonly [string, number][]): number {
    return this.raw(BTF_KIND.FUNC_PROTO, '', params.length, ret, params.flatMap(([n, t]) => [this.str(n), t]));
  }
  func(name: string, proto: number, linkage = 1): number {
    return this.raw(BTF_KIND.FUNC, name, linkage, proto);
  }
  var(name: string, type: number, linkage = 1): number {
    return this.raw(BTF_KIND.VAR, name, 0, type, [linkage]);
  }
  datasec(name: string, size: number, vars: readonly [number, number, number][]): number {
    return this.raw(BTF_KIND.DATASEC, name, vars.length, size, vars.flat());
  }
  float(name: string, size: number): number {
    return this.raw(BTF_KIND.FLOAT, name, 0, size);
  }
  declTag(name: string, type: number, componentIdx: number): number {
    return this.raw(BTF_KIND.DECL_TAG, name, 0, type, [componentIdx]);
  }
  typeTag(name: string, type: number): number {
    return this.raw(BTF_KIND.TYPE_TAG, name, 0, type);
  }

  get typeCount(): number {
    return this.records.length;
  }

  /**
   * The BTF file: header, types, strings. With `kindLayout`, the header is 32 bytes and a kind
   * layout section ({flags, info_sz, elem_sz} per kind) follows the strings.
   */
  build(options: { kindLayout?: readonly (readonly [number, number, number])[] } = {}): Buffer {
    const types = Buffer.concat(this.records);
    const strings = Buffer.concat(this.strings);
    const layout = options.kindLayout ? Buffer.from(options.kindLayout.flat()) : undefined;
    const hdrLen = layout ? 32 : 24;
    const header = Buffer.alloc(hdrLen);
    header.writeUInt16LE(0xeb9f, 0);
    header.writeUInt8(1, 2);
    header.writeUInt8(0, 3);
    header.writeUInt32LE(hdrLen, 4);
    header.writeUInt32LE(0, 8);
    header.writeUInt32LE(types.length, 12);
    header.writeUInt32LE(types.length, 16);
    header.writeUInt32LE(strings.length, 20);
    if (layout) {
      header.writeUInt32LE(types.length + strings.length, 24);
      header.writeUInt32LE(layout.length, 28);
    }
    return Buffer.concat([header, types, strings, ...(layout ? [layout] : [])]);
  }
}

/** A minimal ELF file (relocatable, little-endian) with the given sections and a .shstrtab. */
export function buildElf(sections: readonly { name: string; data: Buffer; type?: number; flags?: number }[], elfClass: 32 | 64 = 64, machine = 62): Buffer {
  const is64 = elfClass === 64;
  const ehsize = is64 ? 64 : 52;
  const shentsize = is64 ? 64 : 40;
  const names = ['', ...sections.map((s) => s.name), '.shstrtab'];
  const nameOffsets: number[] = [];
  let shstr = Buffer.alloc(0);
  for (const n of names) {
    nameOffsets.push(shstr.length);
    shstr = Buffer.concat([shstr, Buffer.from(n, 'latin1'), Buffer.from([0])]);
  }
  const datas = [...sections.map((s) => s.data), shstr];
  const offsets: number[] = [];
  let cursor = ehsize;
  for (const d of datas) {
    offsets.push(cursor);
    cursor += d.length;
  }
  const shoff = cursor + ((8 - (cursor % 8)) % 8);
  const shnum = names.length;
  const out = Buffer.alloc(shoff + shnum * shentsize);
  out.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1], 0);
  out.writeUInt16LE(1, 16); // ET_REL
  out.writeUInt16LE(machine, 18);
  out.writeUInt32LE(1, 20);
  if (is64) {
    out.writeBigUInt64LE(BigInt(shoff), 40);
    out.writeUInt16LE(ehsize, 52);
    out.writeUInt16LE(shentsize, 58);
    out.writeUInt16LE(shnum, 60);
    out.writeUInt16LE(shnum - 1, 62);
  } else {
    out.writeUInt32LE(shoff, 32);
    out.writeUInt16LE(ehsize, 40);
    out.writeUInt16LE(shentsize, 46);
    out.writeUInt16LE(shnum, 48);
    out.writeUInt16LE(shnum - 1, 50);
  }
  datas.forEach((d, i) => d.copy(out, offsets[i]!));
  for (let i = 1; i < shnum; i++) {
    const at = shoff + i * shentsize;
    const s = sections[i - 1];
    out.writeUInt32LE(nameOffsets[i]!, at);
    out.writeUInt32LE(s?.type ?? (i === shnum - 1 ? 3 : 1), at + 4); // PROGBITS, or STRTAB for .shstrtab
    if (is64) {
      out.writeBigUInt64LE(BigInt(s?.flags ?? 0), at + 8);
      out.writeBigUInt64LE(BigInt(offsets[i - 1]!), at + 24);
      out.writeBigUInt64LE(BigInt(datas[i - 1]!.length), at + 32);
      out.writeBigUInt64LE(1n, at + 48);
    } else {
      out.writeUInt32LE(s?.flags ?? 0, at + 8);
      out.writeUInt32LE(offsets[i - 1]!, at + 16);
      out.writeUInt32LE(datas[i - 1]!.length, at + 20);
      out.writeUInt32LE(1, at + 32);
    }
  }
  return out;
}

/**
 * A small BTF with a Xen-named struct of every interesting shape: arch_shared_info as Xen lays it
 * out on x86_64, plus one type of each of the 19 kinds. Used by the reader tests and the fuzzer.
 */
export function sampleBtf(): { builder: BtfBuilder; ids: Record<string, number> } {
  const b = new BtfBuilder();
  const ulong = b.int('long unsigned int', 8);
  const uint = b.int('unsigned int', 4);
  const int = b.int('int', 4, 1);
  const xenPfn = b.typedef('xen_pfn_t', ulong);
  const ash = b.struct('arch_shared_info', 48, [
    { name: 'max_pfn', type: ulong, bitOffset: 0 },
    { name: 'pfn_to_mfn_frame_list_list', type: xenPfn, bitOffset: 64 },
    { name: 'nmi_reason', type: ulong, bitOffset: 128 },
    { name: 'p2m_cr3', type: ulong, bitOffset: 192 },
    { name: 'p2m_vaddr', type: ulong, bitOffset: 256 },
    { name: 'p2m_generation', type: ulong, bitOffset: 320 },
  ]);
  const ptr = b.ptr(ash);
  const arr = b.array(uint, int, 4);
  const uni = b.struct('u', 8, [
    { name: 'a', type: ulong, bitOffset: 0 },
    { name: 'b', type: uint, bitOffset: 0 },
  ], true);
  const en = b.enum('e', 4, [['E0', 0], ['E1', 1]]);
  const fwd = b.fwd('later');
  const vol = b.volatile(uint);
  const con = b.const(vol);
  const res = b.restrict(ptr);
  const proto = b.funcProto(int, [['x', int], ['p', res]]);
  const func = b.func('f', proto);
  const vr = b.var('v', con);
  const sec = b.datasec('.data', 4, [[vr, 0, 4]]);
  const flt = b.float('double', 8);
  const tag = b.declTag('tag', ash, 1);
  const ttag = b.typeTag('user', ptr);
  const e64 = b.enum64('e64', 8, [['BIG', 1n << 40n]]);
  const bits = b.struct('bits', 4, [
    { name: 'lo', type: uint, bitOffset: 0, bitfieldSize: 3 },
    { name: 'hi', type: uint, bitOffset: 3, bitfieldSize: 29 },
  ]);
  return {
    builder: b,
    ids: { ulong, uint, int, xenPfn, ash, ptr, arr, uni, en, fwd, vol, con, res, proto, func, vr, sec, flt, tag, ttag, e64, bits },
  };
}
