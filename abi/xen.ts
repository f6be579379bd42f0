/**
 * Mirrors the hypercall-level parts of `xen/include/public/xen.h`: hypercall numbers, reserved
 * domain ids, `mmu_update` and its commands, `mmuext_op` and its commands, `update_va_mapping`
 * flags, `multicall_entry` and `vm_assist` commands, plus helpers that build and take apart the
 * packed arguments (`mmu_update.ptr`, `foreigndom`, the `UVMF_*` flags word).
 *
 * Names are Xen's, as seen with `__XEN_INTERFACE_VERSION__ = 0x00040e00`. Word-wide values
 * (addresses, MFNs, `unsigned long` flags) are `bigint` on both ABIs.
 */

import {
  array,
  field,
  guestHandle,
  inlineUnion,
  uint64_t,
  unsigned_int,
  unsigned_long,
  xen_pfn_t,
  xen_ulong_t,
} from './ctype.js';
import { constants, externalConstants } from './constants.js';
import { AbiRangeError } from './errors.js';
import { wordMask, type GuestAbi } from './guest-abi.js';
import { defineStruct } from './struct.js';

// ---------------------------------------------------------------------------------------------
// Hypercall numbers. A PV guest calls `hypercall_page + 32 * nr`; x86_64 passes the number in
// rax and arguments in rdi, rsi, rdx, r10, r8; x86_32 uses eax and ebx, ecx, edx, esi, edi.
// ---------------------------------------------------------------------------------------------

export const __HYPERVISOR_set_trap_table = 0;
export const __HYPERVISOR_mmu_update = 1;
export const __HYPERVISOR_set_gdt = 2;
export const __HYPERVISOR_stack_switch = 3;
export const __HYPERVISOR_set_callbacks = 4;
export const __HYPERVISOR_fpu_taskswitch = 5;
/** The old sched_op (a compat name since interface 0x00030101); superseded by `__HYPERVISOR_sched_op`. */
export const __HYPERVISOR_sched_op_compat = 6;
export const __HYPERVISOR_platform_op = 7;
export const __HYPERVISOR_set_debugreg = 8;
export const __HYPERVISOR_get_debugreg = 9;
export const __HYPERVISOR_update_descriptor = 10;
export const __HYPERVISOR_memory_op = 12;
export const __HYPERVISOR_multicall = 13;
export const __HYPERVISOR_update_va_mapping = 14;
export const __HYPERVISOR_set_timer_op = 15;
/** The old event_channel_op (compat since interface 0x00030202); superseded by `__HYPERVISOR_event_channel_op`. */
export const __HYPERVISOR_event_channel_op_compat = 16;
export const __HYPERVISOR_xen_version = 17;
export const __HYPERVISOR_console_io = 18;
/** The old physdev_op (compat since interface 0x00030202); superseded by `__HYPERVISOR_physdev_op`. */
export const __HYPERVISOR_physdev_op_compat = 19;
export const __HYPERVISOR_grant_table_op = 20;
export const __HYPERVISOR_vm_assist = 21;
export const __HYPERVISOR_update_va_mapping_otherdomain = 22;
/** x86 only. */
export const __HYPERVISOR_iret = 23;
export const __HYPERVISOR_vcpu_op = 24;
/** x86_64 only. */
export const __HYPERVISOR_set_segment_base = 25;
export const __HYPERVISOR_mmuext_op = 26;
export const __HYPERVISOR_xsm_op = 27;
export const __HYPERVISOR_nmi_op = 28;
export const __HYPERVISOR_sched_op = 29;
export const __HYPERVISOR_callback_op = 30;
export const __HYPERVISOR_xenoprof_op = 31;
export const __HYPERVISOR_event_channel_op = 32;
export const __HYPERVISOR_physdev_op = 33;
export const __HYPERVISOR_hvm_op = 34;
export const __HYPERVISOR_sysctl = 35;
export const __HYPERVISOR_domctl = 36;
export const __HYPERVISOR_kexec_op = 37;
export const __HYPERVISOR_tmem_op = 38;
export const __HYPERVISOR_argo_op = 39;
export const __HYPERVISOR_xenpmu_op = 40;
export const __HYPERVISOR_dm_op = 41;
export const __HYPERVISOR_hypfs_op = 42;
/** Architecture-specific hypercalls 48..55; x86 uses arch_0 for `mca` (arch-x86/xen-mca.h). */
export const __HYPERVISOR_arch_0 = 48;
export const __HYPERVISOR_arch_1 = 49;
export const __HYPERVISOR_arch_2 = 50;
export const __HYPERVISOR_arch_3 = 51;
export const __HYPERVISOR_arch_4 = 52;
export const __HYPERVISOR_arch_5 = 53;
export const __HYPERVISOR_arch_6 = 54;
export const __HYPERVISOR_arch_7 = 55;

export const HYPERCALL_CONSTANTS = constants('xen.h', {
  __HYPERVISOR_set_trap_table,
  __HYPERVISOR_mmu_update,
  __HYPERVISOR_set_gdt,
  __HYPERVISOR_stack_switch,
  __HYPERVISOR_set_callbacks,
  __HYPERVISOR_fpu_taskswitch,
  __HYPERVISOR_sched_op_compat,
  __HYPERVISOR_platform_op,
  __HYPERVISOR_set_debugreg,
  __HYPERVISOR_get_debugreg,
  __HYPERVISOR_update_descriptor,
  __HYPERVISOR_memory_op,
  __HYPERVISOR_multicall,
  __HYPERVISOR_update_va_mapping,
  __HYPERVISOR_set_timer_op,
  __HYPERVISOR_event_channel_op_compat,
  __HYPERVISOR_xen_version,
  __HYPERVISOR_console_io,
  __HYPERVISOR_physdev_op_compat,
  __HYPERVISOR_grant_table_op,
  __HYPERVISOR_vm_assist,
  __HYPERVISOR_update_va_mapping_otherdomain,
  __HYPERVISOR_iret,
  __HYPERVISOR_vcpu_op,
  __HYPERVISOR_set_segment_base,
  __HYPERVISOR_mmuext_op,
  __HYPERVISOR_xsm_op,
  __HYPERVISOR_nmi_op,
  __HYPERVISOR_sched_op,
  __HYPERVISOR_callback_op,
  __HYPERVISOR_xenoprof_op,
  __HYPERVISOR_event_channel_op,
  __HYPERVISOR_physdev_op,
  __HYPERVISOR_hvm_op,
  __HYPERVISOR_sysctl,
  __HYPERVISOR_domctl,
  __HYPERVISOR_kexec_op,
  __HYPERVISOR_tmem_op,
  __HYPERVISOR_argo_op,
  __HYPERVISOR_xenpmu_op,
  __HYPERVISOR_dm_op,
  __HYPERVISOR_hypfs_op,
  __HYPERVISOR_arch_0,
  __HYPERVISOR_arch_1,
  __HYPERVISOR_arch_2,
  __HYPERVISOR_arch_3,
  __HYPERVISOR_arch_4,
  __HYPERVISOR_arch_5,
  __HYPERVISOR_arch_6,
  __HYPERVISOR_arch_7,
});

/** Hypercall number → Xen's name without the `__HYPERVISOR_` prefix, for traces and messages. */
export const HYPERCALL_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(
    Object.entries(HYPERCALL_CONSTANTS.values).map(([name, nr]) => [Number(nr), name.slice('__HYPERVISOR_'.length)]),
  ),
);

/** `mmu_update`, `memory_op`, … for a known number; `hypercall_<nr>` for an unassigned one. */
export function hypercallName(nr: number): string {
  return HYPERCALL_NAMES[nr] ?? `hypercall_${nr}`;
}

// ---------------------------------------------------------------------------------------------
// Reserved domain ids (domid_t is 16 bits; ids from DOMID_FIRST_RESERVED up are never domains).
// ---------------------------------------------------------------------------------------------

/** Ids at or above this value name no ordinary domain. */
export const DOMID_FIRST_RESERVED = 0x7ff0;
/** The calling domain itself. */
export const DOMID_SELF = 0x7ff0;
/** As a foreigndom: only I/O (non-RAM) mappings are allowed. */
export const DOMID_IO = 0x7ff1;
/** As a foreigndom (privileged callers only): Xen's own heap pages, e.g. the m2p. */
export const DOMID_XEN = 0x7ff2;
/** Owner of sharable (copy-on-write) pages. */
export const DOMID_COW = 0x7ff3;
/** Owner of pages whose owner is unknown. */
export const DOMID_INVALID = 0x7ff4;
/** The idle domain. */
export const DOMID_IDLE = 0x7fff;
/** Mask of the bits a domain id may use. */
export const DOMID_MASK = 0x7fff;

export const DOMID_CONSTANTS = constants('xen.h', {
  DOMID_FIRST_RESERVED,
  DOMID_SELF,
  DOMID_IO,
  DOMID_XEN,
  DOMID_COW,
  DOMID_INVALID,
  DOMID_IDLE,
  DOMID_MASK,
});

// ---------------------------------------------------------------------------------------------
// mmu_update(const mmu_update_t reqs[], unsigned count, unsigned *pdone, unsigned foreigndom)
// ---------------------------------------------------------------------------------------------

/** `ptr` = MACHINE address of a PTE; Xen validates and writes `val` there. */
export const MMU_NORMAL_PT_UPDATE = 0;
/** `ptr` = a MACHINE address inside the frame; sets m2p[ptr >> 12] = `val` (a pfn). */
export const MMU_MACHPHYS_UPDATE = 1;
/** As MMU_NORMAL_PT_UPDATE, but the A and D bits already in the PTE are ORed into `val`. */
export const MMU_PT_UPDATE_PRESERVE_AD = 2;
/** As MMU_NORMAL_PT_UPDATE, but `val` is never translated through the FD's tables. */
export const MMU_PT_UPDATE_NO_TRANSLATE = 3;

export const MMU_UPDATE_CONSTANTS = constants('xen.h', {
  MMU_NORMAL_PT_UPDATE,
  MMU_MACHPHYS_UPDATE,
  MMU_PT_UPDATE_PRESERVE_AD,
  MMU_PT_UPDATE_NO_TRANSLATE,
});

/**
 * The low bits of `mmu_update.ptr` that carry the command. The header calls the field `ptr[1:0]`,
 * but Xen decodes `ptr & (sizeof(l1_pgentry_t) - 1)`, i.e. three bits, and fails commands 4..7
 * with -ENOSYS; since every target is 8-byte aligned the third bit is free.
 */
export const MMU_UPDATE_CMD_MASK = 7n;
/** Set by Xen in `count` of a preempted mmu_update/mmuext_op continuation; never set by a guest. */
export const MMU_UPDATE_PREEMPTED = 0x80000000;
/** `foreigndom` bits 15:0 hold FD, the owner of the data frames. */
export const FOREIGNDOM_FD_MASK = 0xffff;
/** `foreigndom` bits 31:16 hold PFD + 1, the owner of the page-table frames (0 = DOMID_SELF). */
export const FOREIGNDOM_PFD_SHIFT = 16;

export const MMU_UPDATE_EXTERNAL_CONSTANTS = externalConstants(
  "Xen's do_mmu_update in xen/arch/x86/mm.c (command mask = sizeof(l1_pgentry_t) - 1; continuation " +
    'flag MMU_UPDATE_PREEMPTED in xen/arch/x86/include/asm/hypercall.h); foreigndom field split from the ' +
    'mmu_update comment in xen.h, which states it in prose only',
  { MMU_UPDATE_CMD_MASK, MMU_UPDATE_PREEMPTED, FOREIGNDOM_FD_MASK, FOREIGNDOM_PFD_SHIFT },
);

export const mmu_update = defineStruct({
  name: 'mmu_update',
  header: 'xen.h',
  doc:
    'One request of HYPERVISOR_mmu_update: a (ptr, val) pair whose command sits in the low bits of ' +
    '`ptr`. 16 bytes on both ABIs; the guest builds an array of these in its own memory.',
  fields: [
    field('ptr', uint64_t, 'MACHINE address of the target, 8-byte aligned, ORed with the command (`ptr & 7`: MMU_NORMAL_PT_UPDATE, MMU_MACHPHYS_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, MMU_PT_UPDATE_NO_TRANSLATE). For page-table commands the address of one PTE in a frame owned by PFD; for MMU_MACHPHYS_UPDATE any address inside the frame (MFN = ptr >> 12) owned by FD. Written by the guest.'),
    field('val', uint64_t, 'New contents: for page-table commands a full PTE (MFN in bits 51:12 plus flags, see page.ts); for MMU_MACHPHYS_UPDATE the pfn that the frame now backs. Written by the guest.'),
  ],
});

/** Hex for frame numbers, addresses and flags in messages (the kit's one failure shape); other values as they are. */
function hex(value: unknown): string {
  return (typeof value === 'bigint' && value >= 0n) || (typeof value === 'number' && Number.isInteger(value) && value >= 0)
    ? `0x${value.toString(16)}`
    : String(value);
}

function checkWord(value: bigint, bits: bigint, what: string): bigint {
  if (typeof value !== 'bigint' || value < 0n || value >> bits !== 0n) {
    throw new AbiRangeError(what, hex(value), Number(bits) / 8, false);
  }
  return value;
}

/**
 * `mmu_update.ptr` for a command on the 8-byte-aligned MACHINE address `maddr`. Commands 4..7 are
 * accepted so that tests can send what Xen rejects with -ENOSYS.
 */
export function makeMmuUpdatePtr(maddr: bigint, cmd: number): bigint {
  checkWord(maddr, 64n, 'mmu_update.ptr');
  if ((maddr & MMU_UPDATE_CMD_MASK) !== 0n) {
    throw new AbiRangeError('mmu_update.ptr (machine address must be 8-byte aligned)', hex(maddr), 8, false);
  }
  if (!Number.isInteger(cmd) || cmd < 0 || cmd > Number(MMU_UPDATE_CMD_MASK)) {
    throw new AbiRangeError('mmu_update.ptr command (3 bits)', String(cmd), 1, false);
  }
  return maddr | BigInt(cmd);
}

/** The command Xen decodes from `ptr`: `ptr & 7`. */
export function mmuUpdateCmd(ptr: bigint): number {
  return Number(checkWord(ptr, 64n, 'mmu_update.ptr') & MMU_UPDATE_CMD_MASK);
}

/** The MACHINE address Xen uses once the command bits are stripped. */
export function mmuUpdateMaddr(ptr: bigint): bigint {
  return checkWord(ptr, 64n, 'mmu_update.ptr') & ~MMU_UPDATE_CMD_MASK;
}

/** The request that makes the m2p say frame `mfn` backs `pfn` (MMU_MACHPHYS_UPDATE). */
export function machphysUpdate(mfn: bigint, pfn: bigint): { ptr: bigint; val: bigint } {
  checkWord(mfn, 52n, 'mmu_update machphys mfn');
  return { ptr: makeMmuUpdatePtr(mfn << 12n, MMU_MACHPHYS_UPDATE), val: checkWord(pfn, 64n, 'mmu_update.val') };
}

/** The request that writes `pte` into the PTE at MACHINE address `pteMaddr` (MMU_NORMAL_PT_UPDATE). */
export function normalPtUpdate(pteMaddr: bigint, pte: bigint): { ptr: bigint; val: bigint } {
  return { ptr: makeMmuUpdatePtr(pteMaddr, MMU_NORMAL_PT_UPDATE), val: checkWord(pte, 64n, 'mmu_update.val') };
}

/** The two domains named by an mmu_update/mmuext_op `foreigndom` argument. */
export interface ForeignDom {
  /** FD: the expected owner of data frames (DOMID_SELF for the caller). */
  readonly fd: number;
  /** PFD: the expected owner of page-table frames (DOMID_SELF for the caller). */
  readonly pfd: number;
}

/**
 * Packs `foreigndom`: FD in bits 15:0, PFD + 1 in bits 31:16, where 0 stands for DOMID_SELF (so a
 * `pfd` of DOMID_SELF, or none, encodes as 0).
 */
export function encodeForeignDom(fd: number, pfd: number = DOMID_SELF): number {
  if (!Number.isInteger(fd) || fd < 0 || fd > FOREIGNDOM_FD_MASK) {
    throw new AbiRangeError('foreigndom FD', hex(fd), 2, false);
  }
  if (!Number.isInteger(pfd) || pfd < 0 || pfd >= FOREIGNDOM_FD_MASK) {
    throw new AbiRangeError('foreigndom PFD (PFD + 1 must fit 16 bits)', hex(pfd), 2, false);
  }
  const high = pfd === DOMID_SELF ? 0 : pfd + 1;
  return ((high << FOREIGNDOM_PFD_SHIFT) | fd) >>> 0;
}

/** Unpacks `foreigndom` as Xen reads it (an `unsigned int`). */
export function decodeForeignDom(foreigndom: number): ForeignDom {
  if (!Number.isInteger(foreigndom) || foreigndom < 0 || foreigndom > 0xffffffff) {
    throw new AbiRangeError('foreigndom', hex(foreigndom), 4, false);
  }
  const high = foreigndom >>> FOREIGNDOM_PFD_SHIFT;
  return { fd: foreigndom & FOREIGNDOM_FD_MASK, pfd: high === 0 ? DOMID_SELF : high - 1 };
}

// ---------------------------------------------------------------------------------------------
// mmuext_op(mmuext_op_t uops[], unsigned count, unsigned *pdone, unsigned foreigndom)
// ---------------------------------------------------------------------------------------------

/** Pin `arg1.mfn` as a validated L1..L4 page table (PAE guests pin their L3). */
export const MMUEXT_PIN_L1_TABLE = 0;
export const MMUEXT_PIN_L2_TABLE = 1;
export const MMUEXT_PIN_L3_TABLE = 2;
export const MMUEXT_PIN_L4_TABLE = 3;
/** Drop the pin on `arg1.mfn` (any level); the table must not be in use as a base pointer. */
export const MMUEXT_UNPIN_TABLE = 4;
/** Load `arg1.mfn` as the vCPU's (kernel) page-table base, i.e. write cr3. */
export const MMUEXT_NEW_BASEPTR = 5;
export const MMUEXT_TLB_FLUSH_LOCAL = 6;
/** Flush `arg1.linear_addr` from the local TLB. */
export const MMUEXT_INVLPG_LOCAL = 7;
/** Flush the TLBs of the vCPUs in the bitmap at `arg2.vcpumask`. */
export const MMUEXT_TLB_FLUSH_MULTI = 8;
/** Flush `arg1.linear_addr` on the vCPUs in the bitmap at `arg2.vcpumask`. */
export const MMUEXT_INVLPG_MULTI = 9;
export const MMUEXT_TLB_FLUSH_ALL = 10;
export const MMUEXT_INVLPG_ALL = 11;
export const MMUEXT_FLUSH_CACHE = 12;
/** Install an LDT at `arg1.linear_addr` (page-aligned) with `arg2.nr_ents` entries. */
export const MMUEXT_SET_LDT = 13;
/** x86_64 only: the page-table base used in user mode. */
export const MMUEXT_NEW_USER_BASEPTR = 15;
/** Zero frame `arg1.mfn`. */
export const MMUEXT_CLEAR_PAGE = 16;
/** Copy frame `arg2.src_mfn` onto frame `arg1.mfn`. */
export const MMUEXT_COPY_PAGE = 17;
export const MMUEXT_FLUSH_CACHE_GLOBAL = 18;
/** Mark / unmark the superpage headed by `arg1.mfn`. */
export const MMUEXT_MARK_SUPER = 19;
export const MMUEXT_UNMARK_SUPER = 20;

export const MMUEXT_CONSTANTS = constants('xen.h', {
  MMUEXT_PIN_L1_TABLE,
  MMUEXT_PIN_L2_TABLE,
  MMUEXT_PIN_L3_TABLE,
  MMUEXT_PIN_L4_TABLE,
  MMUEXT_UNPIN_TABLE,
  MMUEXT_NEW_BASEPTR,
  MMUEXT_TLB_FLUSH_LOCAL,
  MMUEXT_INVLPG_LOCAL,
  MMUEXT_TLB_FLUSH_MULTI,
  MMUEXT_INVLPG_MULTI,
  MMUEXT_TLB_FLUSH_ALL,
  MMUEXT_INVLPG_ALL,
  MMUEXT_FLUSH_CACHE,
  MMUEXT_SET_LDT,
  MMUEXT_NEW_USER_BASEPTR,
  MMUEXT_CLEAR_PAGE,
  MMUEXT_COPY_PAGE,
  MMUEXT_FLUSH_CACHE_GLOBAL,
  MMUEXT_MARK_SUPER,
  MMUEXT_UNMARK_SUPER,
});

export const mmuext_op = defineStruct({
  name: 'mmuext_op',
  header: 'xen.h',
  doc:
    'One request of HYPERVISOR_mmuext_op: pin/unpin page tables, switch base pointers, flush TLBs, ' +
    'clear or copy frames. 24 bytes on x86_64, 12 on x86_32; which union member is meaningful ' +
    'depends on `cmd`. Built by the guest in its own memory; where a foreigndom is given, the frames ' +
    'named must belong to it.',
  fields: [
    field('cmd', unsigned_int, 'The operation, one of MMUEXT_*. Written by the guest.'),
    field(
      'arg1',
      inlineUnion([
        field('mfn', xen_pfn_t, 'MFN of the frame to (un)pin, load as base pointer, clear, mark/unmark as a superpage, or copy onto (the destination of MMUEXT_COPY_PAGE). Written by the guest.'),
        field('linear_addr', unsigned_long, 'VIRTUAL address: the page to flush for MMUEXT_INVLPG_*, or the page-aligned LDT base for MMUEXT_SET_LDT. Written by the guest.'),
      ]),
      'First argument; one word. Unused by the flush-all and cache commands.',
    ),
    field(
      'arg2',
      inlineUnion([
        field('nr_ents', unsigned_int, 'MMUEXT_SET_LDT: number of LDT entries. Written by the guest.'),
        field('vcpumask', guestHandle('const_void'), 'MMUEXT_TLB_FLUSH_MULTI / MMUEXT_INVLPG_MULTI: guest VIRTUAL address of a bitmap of the vCPUs to flush. Written by the guest.'),
        field('src_mfn', xen_pfn_t, 'MMUEXT_COPY_PAGE: MFN of the source frame. Written by the guest.'),
      ]),
      'Second argument; one word. Only SET_LDT, the *_MULTI flushes and COPY_PAGE use it.',
    ),
  ],
});

// ---------------------------------------------------------------------------------------------
// update_va_mapping(unsigned long va, u64 val, unsigned long flags)
// ---------------------------------------------------------------------------------------------

/** No flush at all. */
export const UVMF_NONE = 0n;
/** Flush the whole TLB(s). */
export const UVMF_TLB_FLUSH = 1n;
/** Flush only the entry for `va`. */
export const UVMF_INVLPG = 2n;
/** The bits that hold the flush type. */
export const UVMF_FLUSHTYPE_MASK = 3n;
/** Flush the vCPUs in a bitmap whose VIRTUAL address is ORed into the flags (its low two bits clear). */
export const UVMF_MULTI = 0n;
/** UVMF_MULTI with a null bitmap: the local vCPU only. */
export const UVMF_LOCAL = 0n;
/** Flush on every vCPU of the domain. */
export const UVMF_ALL = 4n;

export const UVMF_CONSTANTS = constants('xen.h', {
  UVMF_NONE,
  UVMF_TLB_FLUSH,
  UVMF_INVLPG,
  UVMF_FLUSHTYPE_MASK,
  UVMF_MULTI,
  UVMF_LOCAL,
  UVMF_ALL,
});

/** What an update_va_mapping flags word asks for, as Xen decodes it. */
export interface UvmfFlags {
  /** UVMF_NONE, UVMF_TLB_FLUSH or UVMF_INVLPG (the header defines no meaning for 3). */
  readonly flushType: bigint;
  /** Which vCPUs: the local one, all, or those in the bitmap at `vcpumask`. */
  readonly target: 'local' | 'all' | 'multi';
  /** VIRTUAL address of the vCPU bitmap when `target` is `'multi'`, else null. */
  readonly vcpumask: bigint | null;
}

/** Decodes a guest-width flags word: type in bits 1:0, the rest is LOCAL (0), ALL (4) or a bitmap pointer. */
export function decodeUvmf(abi: GuestAbi, flags: bigint): UvmfFlags {
  if (typeof flags !== 'bigint' || flags < 0n || flags > wordMask(abi)) {
    throw new AbiRangeError('update_va_mapping flags', hex(flags), abi.wordSize, false);
  }
  const flushType = flags & UVMF_FLUSHTYPE_MASK;
  const rest = flags & ~UVMF_FLUSHTYPE_MASK;
  if (rest === UVMF_LOCAL) return { flushType, target: 'local', vcpumask: null };
  if (rest === UVMF_ALL) return { flushType, target: 'all', vcpumask: null };
  return { flushType, target: 'multi', vcpumask: rest };
}

/** A flags word flushing the vCPUs in the bitmap at VIRTUAL address `vcpumask` (4-byte aligned, not 0 or 4). */
export function uvmfMulti(abi: GuestAbi, flushType: bigint, vcpumask: bigint): bigint {
  if (flushType !== UVMF_TLB_FLUSH && flushType !== UVMF_INVLPG) {
    throw new AbiRangeError('update_va_mapping flush type (UVMF_TLB_FLUSH or UVMF_INVLPG)', hex(flushType), 1, false);
  }
  if (typeof vcpumask !== 'bigint' || vcpumask <= UVMF_ALL || vcpumask > wordMask(abi) || (vcpumask & UVMF_FLUSHTYPE_MASK) !== 0n) {
    throw new AbiRangeError('update_va_mapping vcpumask pointer (aligned, above 4)', hex(vcpumask), abi.wordSize, false);
  }
  return vcpumask | UVMF_MULTI | flushType;
}

// ---------------------------------------------------------------------------------------------
// multicall(multicall_entry_t call_list[], uint32_t nr_calls)
// ---------------------------------------------------------------------------------------------

export const multicall_entry = defineStruct({
  name: 'multicall_entry',
  header: 'xen.h',
  doc:
    'One hypercall inside HYPERVISOR_multicall: 64 bytes on x86_64, 32 on x86_32. Xen runs the ' +
    'entries in order and stores each one\'s return value in its `result`; a failing entry does not ' +
    'stop the batch, so the guest must check every `result`.',
  fields: [
    field('op', xen_ulong_t, 'Hypercall number (__HYPERVISOR_*). Written by the guest.'),
    field('result', xen_ulong_t, 'The hypercall\'s return value at guest width (a negative -errno reads as a large unsigned word). Written by Xen.'),
    field('args', array(xen_ulong_t, 6), 'Up to six hypercall arguments, each one guest word; guest addresses are VIRTUAL. Written by the guest.'),
  ],
});

// ---------------------------------------------------------------------------------------------
// vm_assist(unsigned int cmd, unsigned int type)
// ---------------------------------------------------------------------------------------------

export const VMASST_CMD_enable = 0;
export const VMASST_CMD_disable = 1;
/** x86_32: emulate full 4 GiB segment limits. */
export const VMASST_TYPE_4gb_segments = 0;
/** x86_32: trap (vector 15) whenever the 4gb_segments emulation is used. */
export const VMASST_TYPE_4gb_segments_notify = 1;
/** Let the guest write bottom-level PTEs directly; Xen traps and validates the writes. */
export const VMASST_TYPE_writable_pagetables = 2;
/** x86_32 PAE: allow the L3 (PDPT) to live above 4 GiB, using cr3's folded MFN bits. */
export const VMASST_TYPE_pae_extended_cr3 = 3;
/** Architectural virtual IOPL behaviour. */
export const VMASST_TYPE_architectural_iopl = 4;
/** Set XEN_RUNSTATE_UPDATE in the mapped runstate area while Xen updates it. */
export const VMASST_TYPE_runstate_update_flag = 5;
/** x86_64: keep the m2p hidden from user mode. */
export const VMASST_TYPE_m2p_strict = 32;

export const VMASST_CONSTANTS = constants('xen.h', {
  VMASST_CMD_enable,
  VMASST_CMD_disable,
  VMASST_TYPE_4gb_segments,
  VMASST_TYPE_4gb_segments_notify,
  VMASST_TYPE_writable_pagetables,
  VMASST_TYPE_pae_extended_cr3,
  VMASST_TYPE_architectural_iopl,
  VMASST_TYPE_runstate_update_flag,
  VMASST_TYPE_m2p_strict,
});
