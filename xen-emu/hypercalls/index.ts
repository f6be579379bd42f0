/**
 * The hypercall table: one file per hypercall, dispatched by number (`__HYPERVISOR_*`). Numbers
 * without an entry return -ENOSYS, as Xen's table does for hypercalls a PV guest cannot use.
 */

import {
  __HYPERVISOR_grant_table_op,
  __HYPERVISOR_memory_op,
  __HYPERVISOR_mmu_update,
  __HYPERVISOR_mmuext_op,
  __HYPERVISOR_multicall,
  __HYPERVISOR_update_va_mapping,
} from '../../abi/index.js';
import type { HypercallHandler } from '../xen.js';
import { do_grant_table_op } from './grant_table_op.js';
import { do_memory_op } from './memory_op.js';
import { do_mmu_update } from './mmu_update.js';
import { do_mmuext_op } from './mmuext_op.js';
import { do_multicall } from './multicall.js';
import { do_update_va_mapping } from './update_va_mapping.js';

export const HYPERCALL_TABLE: Readonly<Record<number, HypercallHandler>> = Object.freeze({
  [__HYPERVISOR_grant_table_op]: do_grant_table_op,
  [__HYPERVISOR_memory_op]: do_memory_op,
  [__HYPERVISOR_mmu_update]: do_mmu_update,
  [__HYPERVISOR_mmuext_op]: do_mmuext_op,
  [__HYPERVISOR_multicall]: do_multicall,
  [__HYPERVISOR_update_va_mapping]: do_update_va_mapping,
});
