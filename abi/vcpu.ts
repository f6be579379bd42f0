/**
 * Mirrors the x86 PV vCPU register state of Xen's public headers: `struct cpu_user_regs`
 * (`arch-x86/xen-x86_64.h`, `arch-x86/xen-x86_32.h`), `struct trap_info` and
 * `struct vcpu_guest_context` with its `VGCF_*` flags (`arch-x86/xen.h`).
 *
 * `vcpu_guest_context` is what `XEN_DOMCTL_getvcpucontext`/`setvcpucontext` and
 * `VCPUOP_initialise` carry, and it is the blob of the migration stream's X86_PV_VCPU_BASIC
 * record: 5168 bytes for an x86_64 guest, 2800 for an x86_32 guest. In that record libxc's saver
 * has replaced the machine frames it holds by pfns: the first ceil(gdt_ents / 512) `gdt_frames`, the top-level
 * page table in `ctrlreg[3]` (and, x86_64, the user page table in `ctrlreg[1]`), and on vCPU 0 the
 * start_info frame in `user_regs.rdx` / `user_regs.edx`. Restore turns them back into MFNs.
 *
 * Register names. The headers declare most registers through macros that, depending on who
 * compiles them, give a plain integer or an anonymous union of every width's name (`rax`, `eax`,
 * `ax`, `al`, `ah` at one offset). The kit has no anonymous aggregates, so each such register is
 * one field named as Xen names its full width — `rax`…`r15`, `rip`, `rflags`, `rsp` on x86_64,
 * `eax`…`ebp`, `eip`, `eflags`, `esp` on x86_32 — and its doc lists the aliases. Every alias
 * starts at the field's offset (little-endian), so `offsetof(…, edx)` on x86_64 is `rdx`'s.
 */

import {
  aliased,
  array,
  char,
  field,
  inlineStruct,
  perAbi,
  struct,
  uint8_t,
  uint16_t,
  uint32_t,
  uint64_t,
  unsigned_long,
} from './ctype.js';
import { constants } from './constants.js';
import type { GuestAbi, GuestAbiName } from './guest-abi.js';
import { defineStruct } from './struct.js';

// ---------------------------------------------------------------------------------------------
// vcpu_guest_context.flags (arch-x86/xen.h, and arch-x86/xen-x86_64.h for VGCF_in_syscall).
// ---------------------------------------------------------------------------------------------

/** Old spelling of `VGCF_i387_valid`. */
export const VGCF_I387_VALID = 1 << 0;
/** Old spelling of `VGCF_in_kernel`. */
export const VGCF_IN_KERNEL = 1 << 2;
export const _VGCF_i387_valid = 0;
/** `fpu_ctxt` holds valid FPU state (an FXSAVE image) to load. */
export const VGCF_i387_valid = 1 << _VGCF_i387_valid;
export const _VGCF_in_kernel = 2;
/** The vCPU was (or is to resume) in guest kernel mode rather than user mode. */
export const VGCF_in_kernel = 1 << _VGCF_in_kernel;
export const _VGCF_failsafe_disables_events = 3;
/** Entering the failsafe callback masks event delivery (sets the vCPU's upcall mask). */
export const VGCF_failsafe_disables_events = 1 << _VGCF_failsafe_disables_events;
export const _VGCF_syscall_disables_events = 4;
/** Entering the syscall callback masks event delivery. */
export const VGCF_syscall_disables_events = 1 << _VGCF_syscall_disables_events;
export const _VGCF_online = 5;
/** The vCPU is up (not offline / never brought up). */
export const VGCF_online = 1 << _VGCF_online;
/** x86_64 only: the vCPU left the guest in SYSCALL context and goes back with SYSRET. */
export const _VGCF_in_syscall = 8;
export const VGCF_in_syscall = 1 << _VGCF_in_syscall;
/** Old spelling of `VGCF_in_syscall`. */
export const VGCF_IN_SYSCALL = VGCF_in_syscall;

export const VGCF_CONSTANTS = constants('arch-x86/xen.h', {
  VGCF_I387_VALID,
  VGCF_IN_KERNEL,
  _VGCF_i387_valid,
  VGCF_i387_valid,
  _VGCF_in_kernel,
  VGCF_in_kernel,
  _VGCF_failsafe_disables_events,
  VGCF_failsafe_disables_events,
  _VGCF_syscall_disables_events,
  VGCF_syscall_disables_events,
  _VGCF_online,
  VGCF_online,
});

/** The x86_64 header adds the SYSCALL/SYSRET flag; the x86_32 one does not define it. */
export const VGCF_X86_64_CONSTANTS = constants(
  'arch-x86/xen-x86_64.h',
  { _VGCF_in_syscall, VGCF_in_syscall, VGCF_IN_SYSCALL },
  {},
  { abi: 'x86_64' },
);

/** Entries in `vcpu_guest_context.trap_ctxt`: one per interrupt vector. */
export const VCPU_TRAP_CTXT_ENTRIES = 256;
/** Entries in `vcpu_guest_context.gdt_frames`: 16 frames of 512 descriptors cover a full GDT. */
export const VCPU_GDT_FRAMES = 16;

// ---------------------------------------------------------------------------------------------
// cpu_user_regs
// ---------------------------------------------------------------------------------------------

/** An alias name, optionally with its C type when that differs from what the name suggests. */
type Alias = string | readonly [name: string, cType: string];

/**
 * A register field with the names its bytes also go by. `tools` are declared when the headers are
 * built with `__XEN__` or `__XEN_TOOLS__` (libxc, Xen); `guest` by other gcc builds.
 */
function reg<const N extends string, W extends typeof uint32_t | typeof uint64_t>(
  name: N,
  type: W,
  only: GuestAbiName,
  doc: string,
  tools: readonly Alias[],
  guest: readonly Alias[] = [],
) {
  const nameOf = (a: Alias) => (typeof a === 'string' ? a : a[0]);
  const list = (names: readonly Alias[]) => names.map((a) => (typeof a === 'string' ? `\`${a}\`` : `\`${a[0]}\` (${a[1]})`)).join(', ');
  const parts = [
    tools.length ? `with \`__XEN__\`/\`__XEN_TOOLS__\`: ${list(tools)}` : '',
    guest.length ? `in other gcc builds: ${list(guest)}` : '',
  ].filter((p) => p !== '');
  const text = parts.length ? `${doc} Other names for these bytes, ${parts.join('; ')}.` : doc;
  return aliased(field(name, type, text, only), [...new Set([...tools, ...guest].map(nameOf))]);
}

/** x86_64 `rax`/`rbx`/`rcx`/`rdx`: 32-, 16- and both 8-bit names. */
const lohi64 = <const N extends string>(r: N, x: string, doc: string) =>
  reg(r, uint64_t, 'x86_64', doc, [[`e${x}x`, 'uint32_t'], `${x}x`, `${x}l`, [`${x}h`, 'byte 1']], [[`e${x}x`, 'uint64_t'], [`_e${x}x`, 'uint32_t']]);
/** x86_64 `rbp`/`rsi`/`rdi`/`rsp`: 32-, 16- and low 8-bit names. */
const lo8_64 = <const N extends string>(r: N, x: string, doc: string) =>
  reg(r, uint64_t, 'x86_64', doc, [[`e${x}`, 'uint32_t'], x, `${x}l`], [[`e${x}`, 'uint64_t'], [`_e${x}`, 'uint32_t']]);
/** x86_64 `rip`/`rflags`: 32- and 16-bit names. */
const lo16_64 = <const N extends string>(r: N, x: string, doc: string) =>
  reg(r, uint64_t, 'x86_64', doc, [[`e${x}`, 'uint32_t'], x], [[`e${x}`, 'uint64_t'], [`_e${x}`, 'uint32_t']]);
/** x86_64 `r8`…`r15`: plain for guests; `rNd`, `rNw`, `rNb` for Xen and the tools. */
const hi64 = <const N extends string>(r: N, doc: string) => reg(r, uint64_t, 'x86_64', doc, [`${r}d`, `${r}w`, `${r}b`]);
/** x86_32 `eax`/`ebx`/`ecx`/`edx`. */
const lo8_32 = <const N extends string>(r: N, x: string, doc: string) =>
  reg(r, uint32_t, 'x86_32', doc, [`${x}x`, `${x}l`, [`${x}h`, 'byte 1']]);
/** x86_32 `esi`/`edi`/`ebp`/`eip`/`eflags`/`esp`. */
const lo16_32 = <const N extends string>(r: N, x: string, doc: string) => reg(r, uint32_t, 'x86_32', doc, [[`_e${x}`, 'uint32_t'], x]);

const SEG_PAD = 'Padding after the selector. Unused.';

export const cpu_user_regs = defineStruct({
  name: 'cpu_user_regs',
  header: 'arch-x86/xen-x86_64.h, arch-x86/xen-x86_32.h',
  doc:
    'The general-purpose registers, instruction pointer, flags, stack and segment selectors of a ' +
    'PV vCPU, as saved on entry to Xen and restored on exit. 200 bytes on x86_64 (every slot 8 ' +
    'bytes), 68 on x86_32. Register names are the full-width ones; each doc lists the narrower ' +
    'aliases the headers declare at the same offset. On vCPU 0 of a saved image, rdx/edx carries ' +
    'the start_info frame (a pfn in the migration stream).',
  fields: [
    // x86_64 general-purpose registers, in Xen's (stack frame) order.
    hi64('r15', 'R15.'),
    hi64('r14', 'R14.'),
    hi64('r13', 'R13.'),
    hi64('r12', 'R12.'),
    lo8_64('rbp', 'bp', 'RBP, the frame pointer.'),
    lohi64('rbx', 'b', 'RBX.'),
    hi64('r11', 'R11.'),
    hi64('r10', 'R10.'),
    hi64('r9', 'R9.'),
    hi64('r8', 'R8.'),
    lohi64('rax', 'a', 'RAX.'),
    lohi64('rcx', 'c', 'RCX.'),
    lohi64('rdx', 'd', 'RDX. A suspending guest passes the MFN of its start_info page here (the third argument of SCHEDOP_shutdown / SHUTDOWN_suspend); in vCPU 0\'s X86_PV_VCPU_BASIC record libxc has turned it into a pfn, and restore puts the new domain\'s start_info MFN back.'),
    lo8_64('rsi', 'si', 'RSI. At boot: the VIRTUAL address of start_info.'),
    lo8_64('rdi', 'di', 'RDI.'),
    // x86_32 general-purpose registers.
    lo8_32('ebx', 'b', 'EBX.'),
    lo8_32('ecx', 'c', 'ECX.'),
    lo8_32('edx', 'd', 'EDX. A suspending guest passes the MFN of its start_info page here (the third argument of SCHEDOP_shutdown / SHUTDOWN_suspend); in vCPU 0\'s X86_PV_VCPU_BASIC record libxc has turned it into a pfn, and restore puts the new domain\'s start_info MFN back.'),
    lo16_32('esi', 'si', 'ESI. At boot: the VIRTUAL address of start_info.'),
    lo16_32('edi', 'di', 'EDI.'),
    lo16_32('ebp', 'bp', 'EBP, the frame pointer.'),
    lo8_32('eax', 'a', 'EAX.'),
    // Common tail; widths and padding differ.
    field('error_code', perAbi(uint16_t, uint32_t), 'Hardware error code of the exception being handled. Xen-private: meaningless to guests and toolstacks.'),
    field('entry_vector', perAbi(uint16_t, uint32_t), 'Vector through which Xen was entered. Xen-private.'),
    lo16_64('rip', 'ip', 'RIP: where the vCPU resumes (VIRTUAL).'),
    lo16_32('eip', 'ip', 'EIP: where the vCPU resumes (VIRTUAL).'),
    field('cs', uint16_t, 'Code segment selector. Its RPL tells kernel from user mode (ring 3 for both on x86_64, ring 1 kernel on x86_32).'),
    field('_pad0', array(uint16_t, 1), 'Padding after `cs`. Unused.', 'x86_64'),
    field('saved_upcall_mask', uint8_t, 'The vCPU\'s event upcall mask (`vcpu_info.evtchn_upcall_mask`) at the time Xen was entered; the flags\' IF bit reads as its inverse.'),
    field('_pad1', array(uint8_t, 3), 'Padding after `saved_upcall_mask`. Unused.', 'x86_64'),
    field('_pad0', uint8_t, 'Padding after `saved_upcall_mask`. Unused.', 'x86_32'),
    lo16_64('rflags', 'flags', 'RFLAGS. IF is virtual: it is the inverse of `saved_upcall_mask`.'),
    lo16_32('eflags', 'flags', 'EFLAGS. IF is virtual: it is the inverse of `saved_upcall_mask`.'),
    lo8_64('rsp', 'sp', 'RSP, the stack pointer (VIRTUAL).'),
    lo16_32('esp', 'sp', 'ESP, the stack pointer (VIRTUAL).'),
    field('ss', uint16_t, 'Stack segment selector.'),
    field('_pad2', array(uint16_t, 3), SEG_PAD, 'x86_64'),
    field('_pad1', uint16_t, SEG_PAD, 'x86_32'),
    field('es', uint16_t, 'ES selector.'),
    field('_pad3', array(uint16_t, 3), SEG_PAD, 'x86_64'),
    field('_pad2', uint16_t, SEG_PAD, 'x86_32'),
    field('ds', uint16_t, 'DS selector.'),
    field('_pad4', array(uint16_t, 3), SEG_PAD, 'x86_64'),
    field('_pad3', uint16_t, SEG_PAD, 'x86_32'),
    field('fs', uint16_t, 'FS selector (on x86_64 the base lives in `vcpu_guest_context.fs_base`).'),
    field('_pad5', array(uint16_t, 3), SEG_PAD, 'x86_64'),
    field('_pad4', uint16_t, SEG_PAD, 'x86_32'),
    field('gs', uint16_t, 'GS selector (on x86_64 the bases live in `gs_base_kernel` / `gs_base_user`).'),
    field('_pad6', array(uint16_t, 3), SEG_PAD, 'x86_64'),
    field('_pad5', uint16_t, SEG_PAD, 'x86_32'),
  ],
});

// ---------------------------------------------------------------------------------------------
// trap_info
// ---------------------------------------------------------------------------------------------

export const trap_info = defineStruct({
  name: 'trap_info',
  header: 'arch-x86/xen.h',
  doc:
    'One entry of a PV guest\'s virtual IDT, as passed to `HYPERVISOR_set_trap_table` (an array ' +
    'ended by an entry whose `address` is 0) and kept in `vcpu_guest_context.trap_ctxt`. 16 bytes ' +
    'on x86_64, 8 on x86_32.',
  fields: [
    field('vector', uint8_t, 'The exception or interrupt vector this entry handles.'),
    field('flags', uint8_t, 'Bits 1:0: the lowest privilege level allowed to raise the vector with a software `int` (0 none, 1–2 kernel, 3 anyone; `TI_GET_DPL`). Bit 2: mask events on entry, like an interrupt gate (`TI_GET_IF`).'),
    field('cs', uint16_t, 'Code segment selector of the handler.'),
    field('address', unsigned_long, 'VIRTUAL address of the handler; 0 ends a trap table.'),
  ],
});

// ---------------------------------------------------------------------------------------------
// vcpu_guest_context
// ---------------------------------------------------------------------------------------------

export const vcpu_guest_context = defineStruct({
  name: 'vcpu_guest_context',
  header: 'arch-x86/xen.h',
  doc:
    'The full architectural state of a PV vCPU: FPU image, registers, virtual IDT, LDT/GDT, ' +
    'kernel stack, control and debug registers, callbacks and vm_assist. Read and written by ' +
    '`XEN_DOMCTL_getvcpucontext`/`setvcpucontext` and `VCPUOP_initialise`; the blob of an ' +
    'X86_PV_VCPU_BASIC record, in which libxc has turned the MFNs of `gdt_frames`, `ctrlreg[3]` ' +
    '(and `ctrlreg[1]` on x86_64) and vCPU 0\'s `user_regs.rdx`/`edx` into pfns. 5168 bytes on ' +
    'x86_64, 2800 on x86_32.',
  fields: [
    field(
      'fpu_ctxt',
      inlineStruct([field('x', array(char, 512), 'The 512-byte FXSAVE (or FSAVE, without FXSR) image.')]),
      'FPU/SSE state, first in the struct so it can be 16-byte aligned for FXSAVE/FXRSTOR. Meaningful only when `flags` has VGCF_i387_valid.',
    ),
    field('flags', unsigned_long, 'VGCF_* bits: VGCF_i387_valid (bit 0), VGCF_in_kernel (bit 2), VGCF_failsafe_disables_events (bit 3), VGCF_syscall_disables_events (bit 4), VGCF_online (bit 5); x86_64 also VGCF_in_syscall (bit 8).'),
    field('user_regs', struct(cpu_user_regs), 'General-purpose registers, instruction pointer, flags and selectors.'),
    field('trap_ctxt', array(struct(trap_info), VCPU_TRAP_CTXT_ENTRIES), 'The virtual IDT, indexed by vector (`HYPERVISOR_set_trap_table`).'),
    field('ldt_base', unsigned_long, 'VIRTUAL (linear) address of the guest\'s LDT; 0 when none.'),
    field('ldt_ents', unsigned_long, 'Number of 8-byte descriptors in that LDT.'),
    field('gdt_frames', array(unsigned_long, VCPU_GDT_FRAMES), 'Frames holding the guest\'s GDT (`HYPERVISOR_set_gdt`), one per 512 descriptors; the first ceil(gdt_ents / 512) are used. MFNs for Xen, pfns in the migration stream.'),
    field('gdt_ents', unsigned_long, 'Number of descriptors in the GDT.'),
    field('kernel_ss', unsigned_long, 'Stack segment selector loaded on a switch to kernel mode (the virtual TSS\'s SS1; `HYPERVISOR_stack_switch`).'),
    field('kernel_sp', unsigned_long, 'Kernel stack pointer loaded with it (SP1), VIRTUAL.'),
    field('ctrlreg', array(unsigned_long, 8), 'CR0–CR7. `ctrlreg[3]` is the top-level page table (L4 on x86_64, the PAE L3 on x86_32) as a cr3 value: `xen_pfn_to_cr3(mfn)`, which on x86_32 folds frame bits above 20 into the low bits. x86_64 keeps the user-mode top-level page table in `ctrlreg[1]` the same way (0 when none). In the migration stream both hold pfns in the same cr3 format.'),
    field('debugreg', array(unsigned_long, 8), 'DR0–DR7.'),
    field('event_callback_cs', unsigned_long, 'x86_32 only: code segment of the event upcall handler.', 'x86_32'),
    field('event_callback_eip', unsigned_long, 'VIRTUAL address of the event upcall handler (`HYPERVISOR_set_callbacks` / CALLBACKTYPE_event).'),
    field('failsafe_callback_cs', unsigned_long, 'x86_32 only: code segment of the failsafe handler.', 'x86_32'),
    field('failsafe_callback_eip', unsigned_long, 'VIRTUAL address of the failsafe handler, entered when Xen cannot load the guest\'s segment state on return.'),
    field('syscall_callback_eip', unsigned_long, 'x86_64 only: VIRTUAL address of the SYSCALL entry point. (Inside Xen this word overlays the compat `event_callback_cs` and `failsafe_callback_cs`.)', 'x86_64'),
    field('vm_assist', unsigned_long, 'Bitmap of enabled VMASST_TYPE_* assists (bit n = type n).'),
    field('fs_base', uint64_t, 'x86_64 only: FS base address (VIRTUAL).', 'x86_64'),
    field('gs_base_kernel', uint64_t, 'x86_64 only: GS base used in kernel mode (VIRTUAL).', 'x86_64'),
    field('gs_base_user', uint64_t, 'x86_64 only: GS base used in user mode (VIRTUAL), swapped in by SWAPGS.', 'x86_64'),
  ],
});

/** The register vCPU 0's saved image uses for the start_info frame: `user_regs.rdx` / `user_regs.edx`. */
export const START_INFO_REG_PATH: Readonly<Record<GuestAbiName, 'user_regs.edx' | 'user_regs.rdx'>> = Object.freeze({
  x86_32: 'user_regs.edx',
  x86_64: 'user_regs.rdx',
});

/**
 * Where, in a vcpu_guest_context of `abi`, the toolstack finds what it rewrites between MFN and pfn
 * (and the kernel stack). Each is `vcpu_guest_context.offsetOf(abi, …)` of the named path; words
 * are `abi.wordSize` bytes, and `user_regs.rdx`/`edx` is a word too (uint64_t / uint32_t).
 */
export interface VcpuContextOffsets {
  readonly flags: number;
  /** `user_regs.rdx` (x86_64) / `user_regs.edx` (x86_32): vCPU 0's start_info frame. */
  readonly startInfoReg: number;
  /** `gdt_frames[0]`; frame i is at `gdt_frames + i * wordSize`. */
  readonly gdt_frames: number;
  readonly gdt_ents: number;
  readonly kernel_ss: number;
  readonly kernel_sp: number;
  /** `ctrlreg[0]`; CRn is at `ctrlreg + n * wordSize`. */
  readonly ctrlreg: number;
  /** `ctrlreg[1]`: x86_64's user-mode page table (cr3 format). */
  readonly cr1: number;
  /** `ctrlreg[3]`: the top-level page table (cr3 format). */
  readonly cr3: number;
}

export function vcpuContextOffsets(abi: GuestAbi): VcpuContextOffsets {
  const at = (path: string): number => vcpu_guest_context.offsetOf(abi, path);
  return Object.freeze({
    flags: at('flags'),
    startInfoReg: at(START_INFO_REG_PATH[abi.name]),
    gdt_frames: at('gdt_frames'),
    gdt_ents: at('gdt_ents'),
    kernel_ss: at('kernel_ss'),
    kernel_sp: at('kernel_sp'),
    ctrlreg: at('ctrlreg'),
    cr1: at('ctrlreg[1]'),
    cr3: at('ctrlreg[3]'),
  });
}
