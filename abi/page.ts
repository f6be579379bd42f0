/**
 * x86 page tables as a PV guest builds them and a toolstack walks them (the linear p2m is reached
 * through `p2m_cr3`), plus the cr3 folding of `arch-x86/xen-x86_64.h` / `xen-x86_32.h`
 * (`xen_pfn_to_cr3`, `xen_cr3_to_pfn`) and the virtual ranges those headers reserve for Xen.
 *
 * Both guest ABIs use 8-byte entries (x86_32 PV guests are PAE). In PV page tables the frame field
 * holds an MFN. No Xen public header defines the `_PAGE_*` bits: they are the architecture's (Intel
 * SDM vol. 3A §4.5), under the names Xen and Linux use internally; values and layout come from the
 * reference (§6), with `PTE_FRAME_MASK` taken from libxc's save code.
 */

import { constants, externalConstants } from './constants.js';
import { AbiRangeError, AbiViewError } from './errors.js';
import { PAGE_SHIFT, wordMask, type GuestAbi, type GuestAbiName } from './guest-abi.js';

// ---------------------------------------------------------------------------------------------
// Entry format (identical for the four x86_64 levels and the three PAE levels)
// ---------------------------------------------------------------------------------------------

/** P: the entry maps something. */
export const _PAGE_PRESENT = 1n << 0n;
/** RW: writable (PV page-table frames themselves must be mapped read-only). */
export const _PAGE_RW = 1n << 1n;
/** US: accessible from user mode. */
export const _PAGE_USER = 1n << 2n;
/** PWT: write-through. */
export const _PAGE_PWT = 1n << 3n;
/** PCD: cache disabled. */
export const _PAGE_PCD = 1n << 4n;
/** A: set by the CPU on access. */
export const _PAGE_ACCESSED = 1n << 5n;
/** D: set by the CPU on write (leaf entries). */
export const _PAGE_DIRTY = 1n << 6n;
/** PS in an L2/L3 entry: a superpage. PV guests do not get superpages for normal mappings. */
export const _PAGE_PSE = 1n << 7n;
/** PAT in an L1 entry (the same bit 7); Xen's PAT order is WB, WT, UC-, UC, WC, WP. */
export const _PAGE_PAT = 1n << 7n;
/** G: global (not flushed on cr3 reload). */
export const _PAGE_GLOBAL = 1n << 8n;
/** NX: no execute. */
export const _PAGE_NX = 1n << 63n;
/** The frame number field, bits 51:12; libxc's `PTE_FRAME_MASK`. */
export const PTE_FRAME_MASK = 0x000ffffffffff000n;
/** Highest MFN a PTE can hold (40 bits of frame number). */
export const PTE_MAX_MFN = PTE_FRAME_MASK >> BigInt(PAGE_SHIFT);

export const PTE_CONSTANTS = externalConstants(
  'x86 paging entry format (Intel SDM vol. 3A §4.5); names as in Xen xen/arch/x86/include/asm/page.h ' +
    'and Linux arch/x86/include/asm/pgtable_types.h; PTE_FRAME_MASK from Xen ' +
    'tools/libs/guest/xg_sr_common_x86_pv.h (PTE_MAX_MFN follows from it)',
  {
    _PAGE_PRESENT,
    _PAGE_RW,
    _PAGE_USER,
    _PAGE_PWT,
    _PAGE_PCD,
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_PSE,
    _PAGE_PAT,
    _PAGE_GLOBAL,
    _PAGE_NX,
    PTE_FRAME_MASK,
    PTE_MAX_MFN,
  },
);

const U64_MAX = (1n << 64n) - 1n;

/** Hex for frame numbers, addresses and flags in messages (the kit's one failure shape); other values as they are. */
function hex(value: unknown): string {
  return (typeof value === 'bigint' && value >= 0n) || (typeof value === 'number' && Number.isInteger(value) && value >= 0)
    ? `0x${value.toString(16)}`
    : String(value);
}

function checkU64(value: bigint, what: string): bigint {
  if (typeof value !== 'bigint' || value < 0n || value > U64_MAX) throw new AbiRangeError(what, hex(value), 8, false);
  return value;
}

/** The MFN in a PTE: `(pte & PTE_FRAME_MASK) >> 12`, as libxc extracts it. */
export function pteFrame(pte: bigint): bigint {
  return (checkU64(pte, 'pte') & PTE_FRAME_MASK) >> BigInt(PAGE_SHIFT);
}

/** The non-frame bits of a PTE (flags, available bits, NX). */
export function pteFlags(pte: bigint): bigint {
  return checkU64(pte, 'pte') & ~PTE_FRAME_MASK;
}

export function pteIsPresent(pte: bigint): boolean {
  return (checkU64(pte, 'pte') & _PAGE_PRESENT) !== 0n;
}

/** A PTE mapping frame `mfn` with `flags`; flags may not touch the frame field. */
export function makePte(mfn: bigint, flags: bigint): bigint {
  if (typeof mfn !== 'bigint' || mfn < 0n || mfn > PTE_MAX_MFN) {
    throw new AbiRangeError('pte frame (mfn)', hex(mfn), 5, false);
  }
  checkU64(flags, 'pte flags');
  if ((flags & PTE_FRAME_MASK) !== 0n) {
    throw new AbiViewError(`pte flags 0x${flags.toString(16)} overlap the frame field 0x${PTE_FRAME_MASK.toString(16)}`);
  }
  return (mfn << BigInt(PAGE_SHIFT)) | flags;
}

// ---------------------------------------------------------------------------------------------
// Paging geometry per ABI
// ---------------------------------------------------------------------------------------------

export interface PagingLevel {
  /** 4 = L4 (x86_64 root), 3 = L3 (PAE root on x86_32), 2 = L2, 1 = L1 (maps 4 KiB pages). */
  readonly level: 1 | 2 | 3 | 4;
  /** The VA bit where this level's index starts: `level * 9 + 3`. */
  readonly shift: number;
  /** Entries this level's index can select: 512, or 4 for the PAE L3. */
  readonly entries: number;
}

export interface PagingGeometry {
  readonly abi: GuestAbiName;
  readonly levels: 3 | 4;
  /** Bytes per entry: 8 on both ABIs. */
  readonly entryBytes: 8;
  /** Entries in one table page (a PAE L3 page also holds 512, of which 4 are meaningful). */
  readonly entriesPerTable: 512;
  /** Meaningful VA bits: 48 (then sign-extended) or 32. */
  readonly vaBits: 48 | 32;
  /** Mask libxc applies to a VA before computing indices: `0x0000ffffffffffff` or `0xffffffff`. */
  readonly vaMask: bigint;
  /** The levels from the root (the frame cr3 names) down to L1. */
  readonly walk: readonly PagingLevel[];
}

const X86_64_PAGING: PagingGeometry = Object.freeze({
  abi: 'x86_64',
  levels: 4,
  entryBytes: 8,
  entriesPerTable: 512,
  vaBits: 48,
  vaMask: 0x0000ffffffffffffn,
  walk: Object.freeze([
    Object.freeze({ level: 4, shift: 39, entries: 512 }),
    Object.freeze({ level: 3, shift: 30, entries: 512 }),
    Object.freeze({ level: 2, shift: 21, entries: 512 }),
    Object.freeze({ level: 1, shift: 12, entries: 512 }),
  ]),
});

const X86_32_PAGING: PagingGeometry = Object.freeze({
  abi: 'x86_32',
  levels: 3,
  entryBytes: 8,
  entriesPerTable: 512,
  vaBits: 32,
  vaMask: 0xffffffffn,
  walk: Object.freeze([
    Object.freeze({ level: 3, shift: 30, entries: 4 }),
    Object.freeze({ level: 2, shift: 21, entries: 512 }),
    Object.freeze({ level: 1, shift: 12, entries: 512 }),
  ]),
});

export function pagingGeometry(abi: GuestAbi): PagingGeometry {
  return abi.name === 'x86_64' ? X86_64_PAGING : X86_32_PAGING;
}

function checkVa(abi: GuestAbi, va: bigint): bigint {
  if (typeof va !== 'bigint' || va < 0n || va > wordMask(abi)) {
    throw new AbiRangeError(`${abi.name} virtual address`, hex(va), abi.wordSize, false);
  }
  return va;
}

/** The index `va` selects in the table at `level` (1..4 on x86_64, 1..3 on x86_32). */
export function pageTableIndex(abi: GuestAbi, va: bigint, level: number): number {
  const geometry = pagingGeometry(abi);
  const found = geometry.walk.find((l) => l.level === level);
  if (!found) throw new AbiViewError(`${abi.name} has no page-table level ${level}`);
  return Number((checkVa(abi, va) >> BigInt(found.shift)) & BigInt(found.entries - 1));
}

/** The indices `va` selects, root first: [L4, L3, L2, L1] or [L3, L2, L1]. */
export function pageTableIndices(abi: GuestAbi, va: bigint): number[] {
  checkVa(abi, va);
  return pagingGeometry(abi).walk.map((l) => Number((va >> BigInt(l.shift)) & BigInt(l.entries - 1)));
}

/** The byte offset of `va` within its 4 KiB page. */
export function pageOffset(va: bigint): number {
  return Number(checkU64(va, 'virtual address') & 0xfffn);
}

/** x86_64: bits 63..47 all equal (all clear in the lower half, all set in the upper half). */
export function isCanonicalVa(va: bigint): boolean {
  checkU64(va, 'virtual address');
  const top = va >> 47n;
  return top === 0n || top === 0x1ffffn;
}

/** x86_64: the canonical form of a 48-bit address (bit 47 copied into bits 63..48). */
export function canonicalVa(va: bigint): bigint {
  const low = checkU64(va, 'virtual address') & 0x0000ffffffffffffn;
  return (low & (1n << 47n)) !== 0n ? low | 0xffff000000000000n : low;
}

// ---------------------------------------------------------------------------------------------
// cr3 folding: arch-x86/xen-x86_64.h and xen-x86_32.h
// ---------------------------------------------------------------------------------------------

const U32_MAX = 0xffffffffn;

function rotl32(value: bigint, bits: bigint): bigint {
  return ((value << bits) | (value >> (32n - bits))) & U32_MAX;
}

/**
 * `xen_pfn_to_cr3(pfn)` as the guest's header computes it. x86_64: `pfn << 12` in an unsigned long
 * (as in C, frame bits above 51 fall off). x86_32: a 32-bit rotate left by 12, so MFN bits 31:20
 * land in cr3 bits 11:0 (MFN 0x123456 → cr3 0x23456001), letting a PAE L3 sit above 4 GiB.
 * `pfn` must fit the guest's `unsigned long`.
 */
export function xen_pfn_to_cr3(abi: GuestAbi, pfn: bigint): bigint {
  if (typeof pfn !== 'bigint' || pfn < 0n || pfn > wordMask(abi)) {
    throw new AbiRangeError('xen_pfn_to_cr3 pfn', hex(pfn), abi.wordSize, false);
  }
  return abi.name === 'x86_64' ? (pfn << 12n) & U64_MAX : rotl32(pfn, 12n);
}

/**
 * `xen_cr3_to_pfn(cr3)` as the guest's header computes it: `cr3 >> 12` on x86_64, a 32-bit rotate
 * right by 12 on x86_32. `cr3` must fit the guest's `unsigned long`; a 32-bit guest's cr3 with bits
 * above 31 is rejected (the header's `(unsigned)` cast would silently drop them).
 */
export function xen_cr3_to_pfn(abi: GuestAbi, cr3: bigint): bigint {
  if (typeof cr3 !== 'bigint' || cr3 < 0n || cr3 > wordMask(abi)) {
    throw new AbiRangeError('xen_cr3_to_pfn cr3', hex(cr3), abi.wordSize, false);
  }
  return abi.name === 'x86_64' ? cr3 >> 12n : rotl32(cr3, 20n);
}

/** libxc's `INVALID_MFN` (`~0UL` on a 64-bit toolstack), what its helpers return for "no frame". */
export const TOOLS_INVALID_MFN = U64_MAX;

/**
 * libxc's `cr3_to_mfn`: the same folding, applied to a 64-bit value as the toolstack holds it
 * (`p2m_cr3` widened, or a vCPU's `ctrlreg[3]`). For a 32-bit guest any bit above 31 makes the
 * result `TOOLS_INVALID_MFN` instead of an error.
 */
export function toolsCr3ToMfn(abi: GuestAbi, cr3: bigint): bigint {
  checkU64(cr3, 'cr3');
  if (abi.name === 'x86_64') return cr3 >> 12n;
  if (cr3 > U32_MAX) return TOOLS_INVALID_MFN;
  return rotl32(cr3, 20n);
}

// ---------------------------------------------------------------------------------------------
// Virtual ranges reserved for Xen. The two headers give the same macro names different values
// (the probe compiles each ABI separately but checks one value per name), so the kit names them
// per ABI and lists them as external constants with the header and ABI they come from.
// ---------------------------------------------------------------------------------------------

/** x86_64 `HYPERVISOR_VIRT_START`: start of Xen's area, L4 slot 256. */
export const HYPERVISOR_VIRT_START_X86_64 = 0xffff800000000000n;
/** x86_64 `HYPERVISOR_VIRT_END`: first address after Xen's area, L4 slot 272 (slots 256–271 are Xen's). */
export const HYPERVISOR_VIRT_END_X86_64 = 0xffff880000000000n;
/** x86_64 `MACH2PHYS_VIRT_START`: the read-only m2p, 8-byte entries. */
export const MACH2PHYS_VIRT_START_X86_64 = 0xffff800000000000n;
/** x86_64 `MACH2PHYS_VIRT_END`. */
export const MACH2PHYS_VIRT_END_X86_64 = 0xffff804000000000n;

/** x86_32 (PAE) `HYPERVISOR_VIRT_START_PAE`: guests may not use VAs from here to 4 GiB. */
export const HYPERVISOR_VIRT_START_PAE = 0xf5800000n;
/** x86_32 (PAE) `MACH2PHYS_VIRT_START_PAE`: the m2p as a 32-bit guest sees it, 4-byte entries. */
export const MACH2PHYS_VIRT_START_PAE = 0xf5800000n;
/** x86_32 (PAE) `MACH2PHYS_VIRT_END_PAE`. */
export const MACH2PHYS_VIRT_END_PAE = 0xf6800000n;

/** Xen's virtual ranges as an x86_64 guest's headers (gcc -m64) define them. */
export const XEN_VIRT_X86_64_CONSTANTS = constants(
  'arch-x86/xen-x86_64.h',
  {
    HYPERVISOR_VIRT_START_X86_64,
    HYPERVISOR_VIRT_END_X86_64,
    MACH2PHYS_VIRT_START_X86_64,
    MACH2PHYS_VIRT_END_X86_64,
  },
  {
    HYPERVISOR_VIRT_START_X86_64: 'HYPERVISOR_VIRT_START',
    HYPERVISOR_VIRT_END_X86_64: 'HYPERVISOR_VIRT_END',
    MACH2PHYS_VIRT_START_X86_64: 'MACH2PHYS_VIRT_START',
    MACH2PHYS_VIRT_END_X86_64: 'MACH2PHYS_VIRT_END',
  },
  { abi: 'x86_64' },
);

/** Xen's virtual ranges as an x86_32 (PAE) guest's headers (gcc -m32) define them. */
export const XEN_VIRT_X86_32_CONSTANTS = constants(
  'arch-x86/xen-x86_32.h',
  { HYPERVISOR_VIRT_START_PAE, MACH2PHYS_VIRT_START_PAE, MACH2PHYS_VIRT_END_PAE },
  {},
  { abi: 'x86_32' },
);

export interface VaRange {
  /** First address. */
  readonly first: bigint;
  /** Last address (inclusive). */
  readonly last: bigint;
}

/**
 * The virtual range Xen keeps for itself, inclusive: x86_64 L4 slots 256–271
 * (0xFFFF800000000000–0xFFFF87FFFFFFFFFF); x86_32 from HYPERVISOR_VIRT_START_PAE to 4 GiB. (Xen's
 * dom0 builder can lower the x86_32 start per domain; libxc assumes the default.)
 */
export function xenReservedVaRange(abi: GuestAbi): VaRange {
  return abi.name === 'x86_64'
    ? { first: HYPERVISOR_VIRT_START_X86_64, last: HYPERVISOR_VIRT_END_X86_64 - 1n }
    : { first: HYPERVISOR_VIRT_START_PAE, last: U32_MAX };
}

/** Whether the inclusive range [first, last] touches Xen's reserved range. */
export function overlapsXenReservedVa(abi: GuestAbi, first: bigint, last: bigint): boolean {
  checkVa(abi, first);
  checkVa(abi, last);
  if (last < first) throw new AbiViewError(`range 0x${first.toString(16)}..0x${last.toString(16)} ends before it starts`);
  const xen = xenReservedVaRange(abi);
  return first <= xen.last && last >= xen.first;
}
