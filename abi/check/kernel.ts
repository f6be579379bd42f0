/**
 * `check-kernel`: a built guest kernel's layouts against the kit. Reads BTF from an ELF file's
 * `.BTF` section (a vmlinux, a module, a `.o` that went through `pahole -J`), from raw BTF (such as
 * /sys/kernel/btf/vmlinux) or from a compressed kernel image, finds every ABI struct by Xen's name
 * or by the names guests use for it (guest-names.ts), flattens its members and classifies it.
 */

import { readFileSync, statSync } from 'node:fs';
import { ABI_STRUCTS } from '../index.js';
import { guestAbi, type GuestAbi, type GuestAbiName } from '../guest-abi.js';
import type { StructInfo } from '../struct.js';
import { BTF_INT_CHAR, BTF_INT_SIGNED, BTF_KIND, BTF_KIND_NAMES, isRawBtf, parseBtf, type Btf } from './btf.js';
import { betterReport, compareStruct, summarize, type ObservedKind, type ObservedNode, type ObservedStruct, type StructReport, type StructStatus } from './compare.js';
import { unpackKernelImage, type UnpackTools } from './decompress.js';
import { EM_386, EM_X86_64, isElf, machineName, parseElf, sectionBytes, SHF_COMPRESSED } from './elf.js';
import { BtfFormatError, ElfFormatError, hex, InputFileError } from './errors.js';
import { GUEST_NAMES, guestNamesOf, type GuestNames } from './guest-names.js';

/** Members listed per struct at most, members looked at per struct at most, and how deep nested aggregates are followed. */
export const MAX_NODES_PER_STRUCT = 20_000;
export const MAX_VISITS_PER_STRUCT = 200_000;
export const MAX_NESTING = 16;
/** Types with the same name looked at per struct at most. */
const MAX_CANDIDATES = 8;

export type AbiSource = 'option' | 'ELF class' | 'size of long in the BTF' | 'default';

export interface LoadedBtf {
  readonly btf: Btf;
  /** What the BTF was found in, outermost first: `bzImage`, `gzip`, `ELF64 x86-64 .BTF`, or `raw BTF`. */
  readonly container: readonly string[];
  readonly elfClass?: 32 | 64;
  readonly elfMachine?: number;
}

export interface KernelCheckOptions {
  /** The guest ABI to check against; default from the ELF class, else from the size of `long`. */
  readonly arch?: GuestAbiName;
  readonly structs?: readonly StructInfo[];
  readonly names?: readonly GuestNames[];
  readonly tools?: UnpackTools;
}

export interface KernelCheckReport {
  readonly file?: string;
  readonly container: readonly string[];
  readonly btf: {
    /** File offset of the BTF header (in the unpacked image when the file was compressed). */
    readonly fileOffset: number;
    readonly bytes: number;
    readonly types: number;
    /** Types of kinds this reader does not know, skipped by the sizes the file declares, by kind number. */
    readonly unknownKinds: Readonly<Record<string, number>>;
  };
  readonly abi: GuestAbiName;
  readonly abiFrom: AbiSource;
  readonly structs: readonly StructReport[];
  readonly summary: Readonly<Record<StructStatus, number>>;
  /** 0 when nothing is incompatible, 1 otherwise. */
  readonly exitCode: 0 | 1;
}

/** Finds the BTF in an ELF file, raw BTF or a compressed kernel image; InputFileError subclasses otherwise. */
export function loadKernelBtf(bytes: Uint8Array, tools: UnpackTools = {}): LoadedBtf {
  if (isElf(bytes)) {
    const elf = parseElf(bytes);
    const found = sectionBytes(bytes, elf, '.BTF');
    const what = `ELF${elf.elfClass} ${machineName(elf.machine)}`;
    if (!found) {
      throw new ElfFormatError(
        `${what} file has no .BTF section (build the kernel with CONFIG_DEBUG_INFO_BTF=y, or add BTF to an object built with -g by running pahole -J on it)`,
        undefined,
      );
    }
    if (found.section.flags & SHF_COMPRESSED) {
      throw new ElfFormatError('the .BTF section is compressed (SHF_COMPRESSED), which is not supported; decompress it with objcopy --decompress-debug-sections', found.section.offset);
    }
    const btf = parseBtf(found.data, { fileOffset: found.section.offset });
    return { btf, container: [`${what} .BTF`], elfClass: elf.elfClass, elfMachine: elf.machine };
  }
  if (isRawBtf(bytes)) return { btf: parseBtf(bytes), container: ['raw BTF'] };
  const unpacked = unpackKernelImage(bytes, tools);
  if (unpacked.steps.length === 0) {
    const head = Buffer.from(bytes.subarray(0, 4)).toString('hex').replace(/(..)(?=.)/g, '$1 ');
    throw new InputFileError(`not an ELF file, raw BTF or compressed kernel image (it starts with ${head || 'nothing: the file is empty'})`, 0);
  }
  const inner = unpacked.bytes;
  if (!isElf(inner) && !isRawBtf(inner)) {
    throw new InputFileError(`the image unpacked from ${unpacked.steps.join(' + ')} is not an ELF file or raw BTF`, undefined);
  }
  try {
    const loaded = loadKernelBtf(inner, tools);
    return { ...loaded, container: [...unpacked.steps, ...loaded.container] };
  } catch (err) {
    if (err instanceof InputFileError) {
      const Kind = err.constructor as new (what: string, offset: number | undefined) => InputFileError;
      throw new Kind(`in the image unpacked from ${unpacked.steps.join(' + ')}: ${err.what}`, err.offset);
    }
    throw err;
  }
}

/** Reads a file for check-kernel; a missing or unreadable file is one InputFileError line. */
export function readInputFile(path: string): Uint8Array {
  try {
    if (statSync(path).isDirectory()) throw new InputFileError(`${path}: cannot read: it is a directory`, undefined);
    return readFileSync(path);
  } catch (err) {
    if (err instanceof InputFileError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new InputFileError(`${path}: cannot read: ${e.message.replace(/, \w+ '.*'$/, '')}`, undefined);
  }
}

/** The guest ABI: the option, else the ELF class, else the size of `long` in the BTF, else x86_64. */
export function guestAbiOf(loaded: LoadedBtf, arch?: GuestAbiName): { abi: GuestAbi; from: AbiSource } {
  if (arch) return { abi: guestAbi(arch), from: 'option' };
  if (loaded.elfClass !== undefined) {
    if (loaded.elfMachine !== EM_386 && loaded.elfMachine !== EM_X86_64) {
      throw new ElfFormatError(
        `ELF machine ${machineName(loaded.elfMachine ?? 0)} is not x86 (i386 or x86-64), whose PV ABIs the kit checks; pass --arch to check it anyway`,
        18,
      );
    }
    return { abi: guestAbi(loaded.elfClass === 64 ? 'x86_64' : 'x86_32'), from: 'ELF class' };
  }
  const longs = loaded.btf.findNamed(['long int', 'long unsigned int', 'unsigned long', 'long'], [BTF_KIND.INT]);
  for (const ids of longs.values()) {
    const size = loaded.btf.sizeOrType(ids[0]!);
    if (size === 4) return { abi: guestAbi('x86_32'), from: 'size of long in the BTF' };
    if (size === 8) return { abi: guestAbi('x86_64'), from: 'size of long in the BTF' };
  }
  return { abi: guestAbi('x86_64'), from: 'default' };
}

/** The C spelling of a BTF type, for messages (`uint32_t`, `struct vcpu_info[32]`, `void *`). */
export function btfTypeName(btf: Btf, id: number, depth = 0): string {
  if (id === 0) return 'void';
  if (depth > 8) return '…';
  const kind = btf.kind(id);
  const name = btf.name(id);
  switch (kind) {
    case BTF_KIND.STRUCT:
      return name ? `struct ${name}` : 'struct { … }';
    case BTF_KIND.UNION:
      return name ? `union ${name}` : 'union { … }';
    case BTF_KIND.ENUM:
    case BTF_KIND.ENUM64:
      return name ? `enum ${name}` : 'enum { … }';
    case BTF_KIND.FWD:
      return `${btf.kindFlag(id) ? 'union' : 'struct'} ${name}`;
    case BTF_KIND.PTR:
      return `${btfTypeName(btf, btf.sizeOrType(id), depth + 1)} *`;
    case BTF_KIND.ARRAY: {
      const a = btf.arrayInfo(id);
      return `${btfTypeName(btf, a.type, depth + 1)}[${a.nelems}]`;
    }
    case BTF_KIND.CONST:
      return `const ${btfTypeName(btf, btf.sizeOrType(id), depth + 1)}`;
    case BTF_KIND.VOLATILE:
      return `volatile ${btfTypeName(btf, btf.sizeOrType(id), depth + 1)}`;
    case BTF_KIND.RESTRICT:
    case BTF_KIND.TYPE_TAG:
      return btfTypeName(btf, btf.sizeOrType(id), depth + 1);
    case BTF_KIND.FUNC_PROTO:
      return 'function';
    default:
      return name || (BTF_KIND_NAMES[kind] ?? `kind ${kind}`).toLowerCase();
  }
}

function observedKind(btf: Btf, resolved: number): ObservedKind {
  switch (btf.kind(resolved)) {
    case 0:
      return 'void';
    case BTF_KIND.INT:
      return 'int';
    case BTF_KIND.ENUM:
    case BTF_KIND.ENUM64:
      return 'enum';
    case BTF_KIND.PTR:
      return 'ptr';
    case BTF_KIND.ARRAY:
      return 'array';
    case BTF_KIND.STRUCT:
      return 'struct';
    case BTF_KIND.UNION:
      return 'union';
    case BTF_KIND.FLOAT:
      return 'float';
    default:
      return 'other';
  }
}

/** A struct or union of one pointer or integer member that fills it: how guest handles are declared. */
function wrapsScalar(btf: Btf, id: number, pointerSize: number): boolean {
  if (btf.vlen(id) !== 1) return false;
  const [m] = btf.members(id);
  if (!m || m.bitOffset !== 0 || m.bitfieldSize !== 0) return false;
  const k = btf.kind(btf.resolve(m.type));
  return (k === BTF_KIND.PTR || k === BTF_KIND.INT) && btf.byteSize(m.type, pointerSize) === btf.sizeOrType(id);
}

/** One BTF struct or union, flattened into dotted member paths. */
export function observeBtfStruct(btf: Btf, id: number, abi: GuestAbi, foundName: string, foundGuest?: string): ObservedStruct {
  const root = btf.resolve(id);
  const rootKind = btf.kind(root);
  if (rootKind !== BTF_KIND.STRUCT && rootKind !== BTF_KIND.UNION) {
    throw new BtfFormatError(`type id ${id} is not a struct or union`, btf.fileOffsetOf(id));
  }
  const ptr = abi.wordSize;
  const nodes = new Map<string, ObservedNode>();
  const notes: string[] = [];
  let truncated = false;
  let visits = 0;
  const walk = (typeId: number, prefix: string, parent: string, baseBits: number, depth: number): void => {
    if (depth > MAX_NESTING) {
      truncated = true;
      return;
    }
    for (const m of btf.members(typeId)) {
      // Anonymous members nest without adding paths: count visits too, or a crafted file could fan out.
      if (nodes.size >= MAX_NODES_PER_STRUCT || ++visits > MAX_VISITS_PER_STRUCT) {
        truncated = true;
        return;
      }
      const bits = baseBits + m.bitOffset;
      const t = btf.resolve(m.type);
      const k = btf.kind(t);
      const aggregate = k === BTF_KIND.STRUCT || k === BTF_KIND.UNION;
      if (m.name === '' && aggregate) {
        walk(t, prefix, parent, bits, depth + 1);
        continue;
      }
      const path = prefix + (m.name || `(unnamed at ${hex(Math.floor(bits / 8))})`);
      if (nodes.has(path)) continue;
      const offset = Math.floor(bits / 8);
      const type = btfTypeName(btf, m.type);
      let kind = observedKind(btf, t);
      let size = btf.byteSize(m.type, ptr) ?? 0;
      let signed: boolean | undefined;
      if (k === BTF_KIND.INT) {
        const info = btf.intInfo(t);
        signed = (info.encoding & BTF_INT_SIGNED) !== 0 || (info.encoding & BTF_INT_CHAR) !== 0;
        if (m.bitfieldSize > 0 || info.bits !== size * 8 || info.bitOffset !== 0 || bits % 8 !== 0) {
          kind = 'bitfield';
          size = Math.ceil((m.bitfieldSize || info.bits) / 8);
        }
      } else if (m.bitfieldSize > 0 || bits % 8 !== 0) {
        kind = 'bitfield';
        size = Math.ceil((m.bitfieldSize || 8) / 8);
      }
      const node: ObservedNode = { path, parent, offset, size, kind, type, ...(signed === undefined ? {} : { signed }) };
      if (kind === 'array') {
        const elem = btf.resolve(btf.arrayInfo(t).type);
        const elemKind = observedKind(btf, elem);
        nodes.set(path, { ...node, elemKind, elemSize: btf.byteSize(elem, ptr) ?? 0 });
        if (elemKind === 'struct' || elemKind === 'union') walk(elem, `${path}[0].`, path, bits, depth + 1);
      } else if (aggregate) {
        nodes.set(path, { ...node, wrapsScalar: wrapsScalar(btf, t, ptr) });
        walk(t, `${path}.`, path, bits, depth + 1);
      } else {
        nodes.set(path, node);
      }
    }
  };
  walk(root, '', '', 0, 0);
  if (truncated) notes.push(`only the first ${nodes.size} members (nested at most ${MAX_NESTING} deep, ${MAX_VISITS_PER_STRUCT} looked at) were compared`);
  const kind = rootKind === BTF_KIND.UNION ? 'union' : 'struct';
  const own = btf.name(root);
  const foundAs = own ? `${kind} ${own}` : `${foundName} (${kind})`;
  return {
    foundAs,
    foundName: own || foundName,
    ...(foundGuest ? { foundGuest } : {}),
    kind,
    size: btf.sizeOrType(root),
    nodes,
    enumerated: true,
    notes,
  };
}

/** Classifies every ABI struct as the BTF lays it out. */
export function checkBtf(loaded: LoadedBtf, options: KernelCheckOptions = {}): { abi: GuestAbi; abiFrom: AbiSource; structs: StructReport[] } {
  const { btf } = loaded;
  const { abi, from } = guestAbiOf(loaded, options.arch);
  const defs = options.structs ?? ABI_STRUCTS;
  const table = options.names ?? GUEST_NAMES;
  const namesOf = (def: StructInfo) => [
    { name: def.name } as { name: string; guest?: string; sharedWith?: string },
    ...(guestNamesOf(def.name, table)?.names ?? []),
  ];
  const wanted = defs.flatMap((def) => namesOf(def).flatMap((n) => [n.name, `${n.name}_t`]));
  const found = btf.findNamed(wanted, [BTF_KIND.STRUCT, BTF_KIND.UNION, BTF_KIND.TYPEDEF, BTF_KIND.FWD]);
  const isAggregate = (id: number): boolean => btf.kind(id) === BTF_KIND.STRUCT || btf.kind(id) === BTF_KIND.UNION;
  const direct = (name: string): number[] => (found.get(name) ?? []).filter(isAggregate);
  const viaTypedef = (name: string): number[] =>
    (found.get(`${name}_t`) ?? [])
      .filter((id) => btf.kind(id) === BTF_KIND.TYPEDEF)
      .map((id) => btf.resolve(id))
      .filter(isAggregate);
  // Names shared with other hypervisors count only in a kernel that has Xen's own structs.
  const hasXen = defs.some((def) => namesOf(def).some((n) => !n.sharedWith && direct(n.name).length + viaTypedef(n.name).length > 0));
  const structs = defs.map((def) => {
    const notes: string[] = [];
    const candidates: { id: number; name: string; guest?: string }[] = [];
    // Tags under every name first; typedefs (`shared_info_t`) after them.
    const lookups = [...namesOf(def).map((n) => ({ n, ids: direct(n.name) })), ...namesOf(def).map((n) => ({ n, ids: viaTypedef(n.name) }))];
    for (const { n, ids } of lookups) {
      if (ids.length === 0) continue;
      if (n.sharedWith && !hasXen) {
        const note = `${n.name} is present but this kernel has no Xen structs, so it is ${n.sharedWith}'s, not taken as Xen's ${def.name}`;
        if (!notes.includes(note)) notes.push(note);
        continue;
      }
      for (const id of ids) if (!candidates.some((c) => c.id === id)) candidates.push({ id, name: n.name, ...(n.guest ? { guest: n.guest } : {}) });
    }
    if (candidates.length === 0) {
      if ((found.get(def.name) ?? []).some((id) => btf.kind(id) === BTF_KIND.FWD)) notes.push(`${def.name} is only declared (BTF FWD), not defined`);
      return compareStruct(def, abi, undefined, { notes, table });
    }
    if (candidates.length > 1) notes.push(`${candidates.length} types carry the name; the closest match is reported`);
    return candidates
      .slice(0, MAX_CANDIDATES)
      .map((c) => compareStruct(def, abi, observeBtfStruct(btf, c.id, abi, c.name, c.guest), { notes, table }))
      .reduce(betterReport);
  });
  return { abi, abiFrom: from, structs };
}

/** check-kernel on the bytes of a file. */
export function checkKernel(bytes: Uint8Array, options: KernelCheckOptions & { readonly file?: string } = {}): KernelCheckReport {
  const loaded = loadKernelBtf(bytes, options.tools);
  const { abi, abiFrom, structs } = checkBtf(loaded, options);
  const summary = summarize(structs);
  const unknownKinds: Record<string, number> = {};
  for (const [kind, n] of loaded.btf.unknownKinds) unknownKinds[String(kind)] = n;
  return {
    ...(options.file === undefined ? {} : { file: options.file }),
    container: loaded.container,
    btf: { fileOffset: loaded.btf.fileOffset, bytes: loaded.btf.bytes.length, types: loaded.btf.typeCount, unknownKinds },
    abi: abi.name,
    abiFrom,
    structs,
    summary,
    exitCode: summary.incompatible > 0 ? 1 : 0,
  };
}

/** check-kernel on a file: reads it (InputFileError when it cannot) and checks it. */
export function checkKernelFile(path: string, options: KernelCheckOptions = {}): KernelCheckReport {
  const bytes = readInputFile(path);
  try {
    return checkKernel(bytes, { ...options, file: path });
  } catch (err) {
    if (err instanceof InputFileError) {
      const Kind = err.constructor as new (what: string, offset: number | undefined) => InputFileError;
      throw new Kind(`${path}: ${err.what}`, err.offset);
    }
    throw err;
  }
}
