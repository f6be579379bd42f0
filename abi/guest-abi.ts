/**
 * The two x86 PV guest ABIs and the C data model each uses.
 *
 * x86_64 PV guests use LP64 SysV; x86_32 PV guests ("compat", pv32pae) use i386 SysV, where
 * `long`, `xen_ulong_t`, `xen_pfn_t` and guest handles are 4 bytes and a `uint64_t` inside a
 * struct is only 4-byte aligned. Everything is little-endian; pages are 4 KiB.
 */

export type GuestAbiName = 'x86_32' | 'x86_64';

export interface GuestAbi {
  readonly name: GuestAbiName;
  /** Bytes in `unsigned long`, `xen_ulong_t`, `xen_pfn_t` and a guest handle. */
  readonly wordSize: 4 | 8;
  /** Alignment of a `uint64_t` member inside a struct. */
  readonly u64Align: 4 | 8;
  /** Paging levels of the guest's page tables: 4-level long mode, or 3-level PAE. */
  readonly pagingLevels: 3 | 4;
  /** The gcc flag that selects this data model for the layout oracle. */
  readonly gccFlag: '-m32' | '-m64';
}

export const X86_32: GuestAbi = Object.freeze({
  name: 'x86_32',
  wordSize: 4,
  u64Align: 4,
  pagingLevels: 3,
  gccFlag: '-m32',
});

export const X86_64: GuestAbi = Object.freeze({
  name: 'x86_64',
  wordSize: 8,
  u64Align: 8,
  pagingLevels: 4,
  gccFlag: '-m64',
});

export const GUEST_ABIS: readonly GuestAbi[] = Object.freeze([X86_32, X86_64]);
export const GUEST_ABI_NAMES: readonly GuestAbiName[] = Object.freeze(['x86_32', 'x86_64']);

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

export function isGuestAbiName(name: string): name is GuestAbiName {
  return (GUEST_ABI_NAMES as readonly string[]).includes(name);
}

export function guestAbi(name: GuestAbiName): GuestAbi {
  return name === 'x86_32' ? X86_32 : X86_64;
}

/** All ones at guest width: `~0UL` for the guest. */
const WORD_MASK_32 = (1n << 32n) - 1n;
const WORD_MASK_64 = (1n << 64n) - 1n;

export function wordMask(abi: GuestAbi): bigint {
  // Constants: this sits on per-entry paths (p2m reads widen through it).
  return abi.wordSize === 4 ? WORD_MASK_32 : WORD_MASK_64;
}
