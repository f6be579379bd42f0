/**
 * Mirrors `xen/include/public/xen.h` (vcpu_time_info, vcpu_info, shared_info) and
 * `arch-x86/xen.h`, `arch-x86/xen-x86_{32,64}.h` (arch_vcpu_info, arch_shared_info).
 *
 * The shared_info page is one machine frame shared by Xen and the guest. Xen writes time, wallclock
 * and event-channel state; the guest writes the p2m fields in `arch` that the toolstack reads during
 * save/restore.
 */

import {
  array,
  field,
  perAbi,
  struct,
  int8_t,
  uint8_t,
  uint32_t,
  uint64_t,
  unsigned_long,
  xen_pfn_t,
  xen_ulong_t,
} from './ctype.js';
import { constants } from './constants.js';
import { defineStruct } from './struct.js';

/** `XEN_LEGACY_MAX_VCPUS`: vcpu_info slots embedded in shared_info. */
export const XEN_LEGACY_MAX_VCPUS = 32;

/** `vcpu_time_info.flags` bits. */
export const XEN_PVCLOCK_TSC_STABLE_BIT = 1 << 0;
export const XEN_PVCLOCK_GUEST_STOPPED = 1 << 1;

/** `arch_shared_info.nmi_reason` bits (`nmi.h`). */
export const _XEN_NMIREASON_io_error = 0;
export const XEN_NMIREASON_io_error = 1 << _XEN_NMIREASON_io_error;
export const _XEN_NMIREASON_pci_serr = 1;
export const XEN_NMIREASON_pci_serr = 1 << _XEN_NMIREASON_pci_serr;
export const _XEN_NMIREASON_unknown = 2;
export const XEN_NMIREASON_unknown = 1 << _XEN_NMIREASON_unknown;

export const vcpu_time_info = defineStruct({
  name: 'vcpu_time_info',
  header: 'xen.h',
  doc:
    'Per-vCPU system time, written by Xen under a seqlock (`version`). Guest time now = ' +
    '`system_time + ((((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32)`, a negative ' +
    'shift meaning a right shift. Identical on both ABIs (Xen checks it as `?vcpu_time_info`).',
  fields: [
    field('version', uint32_t, 'Seqlock. Xen increments it before and after each update, so odd means an update is in progress; a reader retries until it sees the same even value before and after. Written by Xen.'),
    field('pad0', uint32_t, 'Padding. Unused.'),
    field('tsc_timestamp', uint64_t, 'TSC value at the last update (TSC ticks). Written by Xen.'),
    field('system_time', uint64_t, 'Nanoseconds since the domain booted, at `tsc_timestamp`. Written by Xen.'),
    field('tsc_to_system_mul', uint32_t, 'Multiplier converting TSC ticks to nanoseconds, a 32.32 fixed-point fraction applied after `tsc_shift`. Written by Xen.'),
    field('tsc_shift', int8_t, 'Shift applied to a TSC delta before `tsc_to_system_mul`; negative means shift right. Written by Xen.'),
    field('flags', uint8_t, '`XEN_PVCLOCK_TSC_STABLE_BIT` (1), `XEN_PVCLOCK_GUEST_STOPPED` (2). Legacy interface versions (≤ 0x040600) spell this byte as `pad1[0]`. Written by Xen.'),
    field('pad1', array(uint8_t, 2), 'Padding. Unused.'),
  ],
});

export const arch_vcpu_info = defineStruct({
  name: 'arch_vcpu_info',
  header: 'arch-x86/xen-x86_64.h, arch-x86/xen-x86_32.h',
  doc: 'x86 per-vCPU state in vcpu_info. Padded so that `sizeof(vcpu_info) == 64` on both ABIs.',
  fields: [
    field('cr2', unsigned_long, 'Faulting linear address of the last page fault delivered to the vCPU (VIRTUAL). Written by Xen.'),
    field('pad', perAbi(array(unsigned_long, 5), unsigned_long), 'Padding: one word on x86_64, five on x86_32. Unused.'),
  ],
});

export const vcpu_info = defineStruct({
  name: 'vcpu_info',
  header: 'xen.h',
  doc:
    'Per-vCPU event and time state; 64 bytes on both ABIs. The first `XEN_LEGACY_MAX_VCPUS` live in ' +
    'shared_info; others are registered elsewhere with VCPUOP_register_vcpu_info.',
  fields: [
    field('evtchn_upcall_pending', uint8_t, 'Non-zero when an event upcall is pending. Set by Xen; the guest clears it before scanning for work.'),
    field('evtchn_upcall_mask', uint8_t, 'Non-zero masks event upcalls to this vCPU (a virtual interrupt flag). Written by the guest; Xen clears it when the vCPU blocks. The domain builder sets it to 1 in all 32 slots.'),
    field('evtchn_pending_sel', xen_ulong_t, 'Bit i set means word i of `shared_info.evtchn_pending` may hold pending bits. Set by Xen, cleared by the guest with an atomic exchange.'),
    field('arch', struct(arch_vcpu_info), 'x86 state: cr2 and padding.'),
    field('time', struct(vcpu_time_info), 'This vCPU\'s system time (seqlock-protected). Written by Xen.'),
  ],
});

export const arch_shared_info = defineStruct({
  name: 'arch_shared_info',
  header: 'arch-x86/xen.h',
  doc:
    'The x86 part of shared_info, where a PV guest publishes its p2m for the toolstack. ' +
    'Neither Xen nor the domain builder initialises the p2m fields: the guest writes all of them ' +
    '(Linux in `xen_setup_mfn_list_list`, in the order max_pfn, fll, p2m_generation = 0, p2m_vaddr, ' +
    'p2m_cr3). On restore the toolstack forces `pfn_to_mfn_frame_list_list` to 0 until the guest ' +
    'republishes.',
  fields: [
    field('max_pfn', unsigned_long, 'Number of valid p2m entries (a pfn count, not the highest pfn): the tree and the linear list cover pfns [0, max_pfn). The toolstack uses `max_pfn - 1` as the highest pfn. Written by the guest; raised (unbracketed) when the p2m grows.'),
    field('pfn_to_mfn_frame_list_list', xen_pfn_t, 'fll: MFN of the top page of the 3-level p2m tree. 0 = not set up yet; ~0 (all ones at guest width) = deliberately invalid, use the linear list at p2m_vaddr; anything else must be a valid MFN. Written by the guest; set to 0 by the toolstack on restore.'),
    field('nmi_reason', unsigned_long, 'Reason bits of a pending NMI: `XEN_NMIREASON_io_error` (bit 0), `pci_serr` (bit 1), `unknown` (bit 2). Written by Xen.'),
    field('p2m_cr3', unsigned_long, 'When non-zero, p2m_vaddr and p2m_generation are valid: the folded cr3 (`xen_pfn_to_cr3`) of the top-level page table (L4 on x86_64, PAE L3 on x86_32) in which p2m_vaddr is mapped. Must be published only once every page of the list is mapped with 4 KiB entries. Written by the guest.'),
    field('p2m_vaddr', unsigned_long, 'VIRTUAL address, under p2m_cr3, of the linear p2m array; every entry in [0, max_pfn) is reachable through it. Linux places it 1 GiB-aligned at the start of a vmalloc area. Written by the guest.'),
    field('p2m_generation', unsigned_long, 'Counter of structural changes to the linear list\'s mappings. Reset to 0 on (re)publication; the guest increments it before and after every change of which frame backs a p2m page, so it is odd during a change and moves by 2 per change. Element stores are not bracketed and must be single atomic stores at guest width. Written by the guest; compared by the toolstack.'),
    field('wc_sec_hi', uint32_t, 'x86_32 only: upper 32 bits of the wallclock seconds (the x86_64 ABI keeps it in shared_info after wc_nsec, where i386 had no room). Written by Xen.', 'x86_32'),
  ],
});

export const shared_info = defineStruct({
  name: 'shared_info',
  header: 'xen.h',
  doc:
    'The shared_info page (one machine frame; `start_info.shared_info` gives its MACHINE address). ' +
    'Guests must not rely on its size staying constant; the rest of the 4 KiB page is unused. ' +
    'The domain builder zeroes it and sets `evtchn_upcall_mask` in every vcpu_info slot.',
  fields: [
    field('vcpu_info', array(struct(vcpu_info), 32), 'Per-vCPU event and time state for vCPUs 0..31 (`XEN_LEGACY_MAX_VCPUS`), entry i at 64·i.'),
    field('evtchn_pending', perAbi(array(xen_ulong_t, 32), array(xen_ulong_t, 64)), '2-level event channel pending bitmap: bit n of the array is port n (1024 ports on x86_32, 4096 on x86_64). Set by Xen, cleared by the guest. Cleared by the toolstack on restore.'),
    field('evtchn_mask', perAbi(array(xen_ulong_t, 32), array(xen_ulong_t, 64)), 'Event channel mask bitmap: a set bit stops the port from raising an upcall. Written by the guest. Set to all ones by the toolstack on restore.'),
    field('wc_version', uint32_t, 'Seqlock for the wallclock fields, as `vcpu_time_info.version`: odd while Xen updates them. Written by Xen.'),
    field('wc_sec', uint32_t, 'Wallclock seconds since 1970-01-01 UTC at system time 0 (low 32 bits; the domain\'s time offset applied). Written by Xen.'),
    field('wc_nsec', uint32_t, 'Nanoseconds part of the wallclock. Written by Xen.'),
    field('wc_sec_hi', uint32_t, 'x86_64 only: upper 32 bits of the wallclock seconds (on x86_32 it is `arch.wc_sec_hi`; `xen_wc_sec_hi` hides the difference). Written by Xen.', 'x86_64'),
    field('arch', struct(arch_shared_info), 'x86 state, including the p2m publication read by the toolstack.'),
  ],
});

export const SHARED_INFO_CONSTANTS = constants('xen.h', {
  XEN_LEGACY_MAX_VCPUS,
  XEN_PVCLOCK_TSC_STABLE_BIT,
  XEN_PVCLOCK_GUEST_STOPPED,
});

export const NMI_CONSTANTS = constants('nmi.h', {
  _XEN_NMIREASON_io_error,
  XEN_NMIREASON_io_error,
  _XEN_NMIREASON_pci_serr,
  XEN_NMIREASON_pci_serr,
  _XEN_NMIREASON_unknown,
  XEN_NMIREASON_unknown,
});
