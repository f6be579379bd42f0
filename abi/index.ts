/**
 * The ABI layer's public API: byte-exact x86_32 and x86_64 PV layouts and constants.
 * `ABI_STRUCTS` and `ABI_CONSTANTS` list everything the oracle checks and the docs render.
 */

import type { ConstantGroup } from './constants.js';
import type { StructInfo } from './struct.js';
import * as domctl from './domctl.js';
import * as errno from './errno.js';
import * as grantTable from './grant_table.js';
import * as memory from './memory.js';
import * as p2m from './p2m.js';
import * as page from './page.js';
import * as sharedInfo from './shared_info.js';
import * as startInfo from './start_info.js';
import * as vcpu from './vcpu.js';
import * as xen from './xen.js';

export * from './guest-abi.js';
export * from './ctype.js';
export * from './constants.js';
export * from './errors.js';
export * from './struct.js';
export * from './shared_info.js';
export * from './start_info.js';
export * from './vcpu.js';
export * from './xen.js';
export * from './page.js';
export * from './p2m.js';
export * from './memory.js';
export * from './grant_table.js';
export * from './errno.js';
export * from './domctl.js';
export * from './probe.js';
export * from './oracle.js';

/** Every struct the kit defines, in documentation order. */
export const ABI_STRUCTS: readonly StructInfo[] = Object.freeze([
  sharedInfo.vcpu_time_info,
  sharedInfo.arch_vcpu_info,
  sharedInfo.vcpu_info,
  sharedInfo.arch_shared_info,
  sharedInfo.shared_info,
  startInfo.start_info,
  vcpu.cpu_user_regs,
  vcpu.trap_info,
  vcpu.vcpu_guest_context,
  xen.mmu_update,
  xen.mmuext_op,
  xen.multicall_entry,
  memory.xen_memory_reservation,
  memory.xen_memory_exchange,
  memory.xen_memory_domain,
  grantTable.grant_entry_v1,
  grantTable.grant_entry_header,
  grantTable.grant_entry_v2,
  grantTable.gnttab_setup_table,
  grantTable.gnttab_map_grant_ref,
  grantTable.gnttab_unmap_grant_ref,
  grantTable.gnttab_unmap_and_replace,
  grantTable.gnttab_query_size,
  grantTable.gnttab_transfer,
  grantTable.gnttab_copy_ptr,
  grantTable.gnttab_copy,
  grantTable.gnttab_dump_table,
  grantTable.gnttab_set_version,
  grantTable.gnttab_get_version,
  grantTable.gnttab_get_status_frames,
  grantTable.gnttab_swap_grant_ref,
  grantTable.gnttab_cache_flush,
]);

/** Every constant table, with the header that defines it. */
export const ABI_CONSTANTS: readonly ConstantGroup[] = Object.freeze([
  sharedInfo.SHARED_INFO_CONSTANTS,
  sharedInfo.NMI_CONSTANTS,
  startInfo.START_INFO_CONSTANTS,
  vcpu.VGCF_CONSTANTS,
  vcpu.VGCF_X86_64_CONSTANTS,
  xen.HYPERCALL_CONSTANTS,
  xen.DOMID_CONSTANTS,
  xen.MMU_UPDATE_CONSTANTS,
  xen.MMU_UPDATE_EXTERNAL_CONSTANTS,
  xen.MMUEXT_CONSTANTS,
  xen.UVMF_CONSTANTS,
  xen.VMASST_CONSTANTS,
  page.PTE_CONSTANTS,
  page.XEN_VIRT_X86_64_CONSTANTS,
  page.XEN_VIRT_X86_32_CONSTANTS,
  p2m.P2M_LINUX_CONSTANTS,
  memory.MEMORY_CONSTANTS,
  memory.MEMORY_TOOLS_CONSTANTS,
  memory.XENMEMF_MACRO_CONSTANTS,
  memory.MEMOP_CONSTANTS,
  grantTable.GRANT_TABLE_CONSTANTS,
  grantTable.GNTTABOP_CMD_CONSTANTS,
  errno.ERRNO_CONSTANTS,
  domctl.DOMCTL_CONSTANTS,
]);

export function findStruct(name: string): StructInfo | undefined {
  return ABI_STRUCTS.find((s) => s.name === name);
}
