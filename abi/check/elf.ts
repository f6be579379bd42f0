/**
 * Just enough of ELF (the System V gABI object format) to find a named section: the file header,
 * the section header table and the section-name string table, for ELF32 and ELF64 in either byte
 * order. Every offset and count is checked against the file size before it is used.
 */

import { ElfFormatError, hex } from './errors.js';

export const ELF_MAGIC = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46);
export const EM_386 = 3;
export const EM_X86_64 = 62;
const SHN_XINDEX = 0xffff;
export const SHT_NOBITS = 8;
export const SHF_COMPRESSED = 0x800;

export interface ElfSection {
  readonly index: number;
  readonly name: string;
  readonly type: number;
  /** Low 32 bits of sh_flags (every flag defined today fits). */
  readonly flags: number;
  /** Byte offset of the section's contents in the file. */
  readonly offset: number;
  readonly size: number;
}

export interface ElfFile {
  readonly elfClass: 32 | 64;
  readonly littleEndian: boolean;
  /** `e_machine`: EM_386 (3), EM_X86_64 (62), … */
  readonly machine: number;
  readonly sections: readonly ElfSection[];
}

export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && ELF_MAGIC.every((b, i) => bytes[i] === b);
}

export function machineName(machine: number): string {
  switch (machine) {
    case EM_386:
      return 'i386';
    case EM_X86_64:
      return 'x86-64';
    case 40:
      return 'ARM';
    case 183:
      return 'AArch64';
    case 243:
      return 'RISC-V';
    default:
      return `machine ${machine}`;
  }
}

/** Bounds-checked reads at absolute file offsets. */
class Reader {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly le: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(at: number, size: number, what: string): void {
    if (at < 0 || at + size > this.bytes.length) {
      throw new ElfFormatError(`truncated ELF file: ${what} needs ${size} bytes at ${hex(at)}, the file has ${this.bytes.length}`, at);
    }
  }
  u16(at: number): number {
    this.need(at, 2, 'a field');
    return this.view.getUint16(at, this.le);
  }
  u32(at: number): number {
    this.need(at, 4, 'a field');
    return this.view.getUint32(at, this.le);
  }
  /** A 64-bit file offset or size; anything past 2^53 cannot be in the file and is reported as such. */
  u64(at: number): number {
    this.need(at, 8, 'a field');
    const value = this.view.getBigUint64(at, this.le);
    return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  }
}

/** Parses the ELF header and the section table; throws ElfFormatError with the file offset. */
export function parseElf(bytes: Uint8Array): ElfFile {
  if (!isElf(bytes)) throw new ElfFormatError('not an ELF file (no \\x7fELF magic)', 0);
  if (bytes.length < 16) throw new ElfFormatError('truncated ELF identification', bytes.length);
  const cls = bytes[4];
  const data = bytes[5];
  if (cls !== 1 && cls !== 2) throw new ElfFormatError(`bad ELF class ${String(cls)} (expected 1 for ELF32 or 2 for ELF64)`, 4);
  if (data !== 1 && data !== 2) throw new ElfFormatError(`bad ELF data encoding ${String(data)} (expected 1 little-endian or 2 big-endian)`, 5);
  const elfClass = cls === 1 ? 32 : 64;
  const r = new Reader(bytes, data === 1);
  const is64 = elfClass === 64;
  r.need(0, is64 ? 64 : 52, 'the ELF header');
  const machine = r.u16(18);
  const shoff = is64 ? r.u64(40) : r.u32(32);
  const shentsize = r.u16(is64 ? 58 : 46);
  let shnum = r.u16(is64 ? 60 : 48);
  let shstrndx = r.u16(is64 ? 62 : 50);
  if (shoff === 0) return { elfClass, littleEndian: r.le, machine, sections: [] };
  const minEntry = is64 ? 64 : 40;
  if (shentsize < minEntry) throw new ElfFormatError(`section header size ${shentsize} is below ${minEntry}`, is64 ? 58 : 46);
  r.need(shoff, shentsize, 'the section header table');
  // Extended numbering: the real count and string-table index live in section 0.
  if (shnum === 0) shnum = is64 ? r.u64(shoff + 32) : r.u32(shoff + 20);
  if (shstrndx === SHN_XINDEX) shstrndx = r.u32(shoff + (is64 ? 40 : 24));
  if (shnum * shentsize > bytes.length - shoff) {
    throw new ElfFormatError(`section header table of ${shnum} entries of ${shentsize} bytes does not fit the file (${bytes.length} bytes)`, shoff);
  }
  const raw: { nameOff: number; type: number; flags: number; offset: number; size: number; at: number }[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    raw.push(
      is64
        ? { nameOff: r.u32(at), type: r.u32(at + 4), flags: r.u32(at + 8), offset: r.u64(at + 24), size: r.u64(at + 32), at }
        : { nameOff: r.u32(at), type: r.u32(at + 4), flags: r.u32(at + 8), offset: r.u32(at + 16), size: r.u32(at + 20), at },
    );
  }
  const strtab = raw[shstrndx];
  if (shnum > 0 && !strtab) throw new ElfFormatError(`section name table index ${shstrndx} is not below the section count ${shnum}`, is64 ? 62 : 50);
  const sections = raw.map((s, index): ElfSection => {
    let name = '';
    if (strtab && strtab.type !== SHT_NOBITS) {
      if (strtab.offset + strtab.size > bytes.length) {
        throw new ElfFormatError(`section name table (${strtab.size} bytes at ${hex(strtab.offset)}) runs past the end of the file`, strtab.at);
      }
      if (s.nameOff >= strtab.size && s.nameOff !== 0) {
        throw new ElfFormatError(`section ${index} name offset ${s.nameOff} is past the name table (${strtab.size} bytes)`, s.at);
      }
      const start = strtab.offset + s.nameOff;
      const end = bytes.indexOf(0, start);
      const stop = end === -1 || end > strtab.offset + strtab.size ? strtab.offset + strtab.size : end;
      name = Buffer.from(bytes.buffer, bytes.byteOffset + start, stop - start).toString('latin1');
    }
    return { index, name, type: s.type, flags: s.flags, offset: s.offset, size: s.size };
  });
  return { elfClass, littleEndian: r.le, machine, sections };
}

/** The contents of a named section; undefined when there is none. Throws when it does not fit the file. */
export function sectionBytes(bytes: Uint8Array, elf: ElfFile, name: string): { section: ElfSection; data: Uint8Array } | undefined {
  const section = elf.sections.find((s) => s.name === name);
  if (!section) return undefined;
  if (section.type === SHT_NOBITS) throw new ElfFormatError(`section ${name} has no contents in the file (SHT_NOBITS)`, section.offset);
  if (section.offset + section.size > bytes.length) {
    throw new ElfFormatError(`section ${name} (${section.size} bytes at ${hex(section.offset)}) runs past the end of the file (${bytes.length} bytes)`, section.offset);
  }
  return { section, data: bytes.subarray(section.offset, section.offset + section.size) };
}
