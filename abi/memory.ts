/**
 * Mirrors `xen/include/public/memory.h`: the `memory_op` hypercall's sub-op numbers, the
 * XENMEMF_* allocation flags and the argument structs of the reservation family
 * (increase/decrease_reservation, populate_physmap, exchange, current/maximum_reservation,
 * maximum_gpfn). Names are those of interface version 0x00040e00 (`mem_flags`, not the legacy
 * `address_bits`).
 *
 * These are the calls through which a PV guest changes which machine frames back its pfns
 * (ballooning, `XENMEM_exchange`), i.e. the p2m changes that race live migration.
 */

import { domid_t, field, guestHandle, struct, unsigned_int, xen_ulong_t } from './ctype.js';
import { constants, externalConstants } from './constants.js';
import { AbiRangeError } from './errors.js';
import { X86_64, type GuestAbi } from './guest-abi.js';
import { defineStruct } from './struct.js';

// ---------------------------------------------------------------------------------------------
// memory_op sub-ops visible to every guest.

export const XENMEM_increase_reservation = 0;
export const XENMEM_decrease_reservation = 1;
export const XENMEM_maximum_ram_page = 2;
export const XENMEM_current_reservation = 3;
export const XENMEM_maximum_reservation = 4;
export const XENMEM_machphys_mfn_list = 5;
export const XENMEM_populate_physmap = 6;
export const XENMEM_add_to_physmap = 7;
// 8 was XENMEM_translate_gpfn_list; the header marks it removed.
export const XENMEM_memory_map = 9;
export const XENMEM_machine_memory_map = 10;
export const XENMEM_exchange = 11;
export const XENMEM_machphys_mapping = 12;
export const XENMEM_set_memory_map = 13;
export const XENMEM_maximum_gpfn = 14;
export const XENMEM_remove_from_physmap = 15;
export const XENMEM_set_pod_target = 16;
export const XENMEM_get_pod_target = 17;
export const XENMEM_add_to_physmap_batch = 23;
export const XENMEM_machphys_compat_mfn_list = 25;
export const XENMEM_get_vnumainfo = 26;
export const XENMEM_acquire_resource = 28;

// memory_op sub-ops that memory.h declares only for Xen itself and the toolstack
// (`#if defined(__XEN__) || defined(__XEN_TOOLS__)`).

export const XENMEM_get_sharing_freed_pages = 18;
export const XENMEM_get_sharing_shared_pages = 19;
export const XENMEM_paging_op = 20;
export const XENMEM_access_op = 21;
export const XENMEM_sharing_op = 22;
export const XENMEM_claim_pages = 24;
export const XENMEM_reserved_device_memory_map = 27;

// ---------------------------------------------------------------------------------------------
// cmd encoding. Not in any public header: Xen defines these in `xen/include/xen/hypercall.h`
// and treats them as ABI, since a guest suspended inside a continuation resumes with them.

/** `cmd >> MEMOP_EXTENT_SHIFT` is the extent at which a reservation op starts (or resumes). */
export const MEMOP_EXTENT_SHIFT = 6;
/** `cmd & MEMOP_CMD_MASK` is the XENMEM_* sub-op. */
export const MEMOP_CMD_MASK = (1 << MEMOP_EXTENT_SHIFT) - 1;

// ---------------------------------------------------------------------------------------------
// XENMEMF_*: `xen_memory_reservation.mem_flags`.
// Bits 0-7: address_bits; bits 8-15: NUMA node + 1 (0 = any node); bits 16-18: flags.

/** Populate with populate-on-demand entries instead of memory (HVM); stops the loop for PV self. */
export const XENMEMF_populate_on_demand = 1 << 16;
/** Allocate only from the node named by `XENMEMF_node(n)`, never fall back to another. */
export const XENMEMF_exact_node_request = 1 << 17;
/** The node named by `XENMEMF_node(n)` is a virtual (guest) node, not a physical one. */
export const XENMEMF_vnode = 1 << 18;

const ADDRESS_BITS_MASK = 0xff;
const NODE_SHIFT = 8;
/** Highest node `XENMEMF_node` can encode: node + 1 must fit bits 8-15. */
const MAX_ENCODABLE_NODE = 0xfe;

function checkUint(what: string, value: number, max: number, bits: number): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    // AbiRangeError counts bytes; a bit field narrower than a byte multiple is bits / 8.
    throw new AbiRangeError(what, String(value), bits / 8, false);
  }
  return value;
}

/**
 * `XENMEMF_address_bits(x)`: the widest machine address, in bits, the allocated frames may have;
 * 0 means no limit. Xen rejects a limit at or below the page shift (12) on allocation.
 */
export function XENMEMF_address_bits(bits: number): number {
  return checkUint('XENMEMF_address_bits', bits, ADDRESS_BITS_MASK, 8);
}

/** `XENMEMF_get_address_bits(flags)`: the address-width limit in `mem_flags` (0 = none). */
export function XENMEMF_get_address_bits(memFlags: number): number {
  return checkUint('mem_flags', memFlags, 0xffff_ffff, 32) & ADDRESS_BITS_MASK;
}

/** `XENMEMF_node(n)`: ask for memory from NUMA node `n` (stored as n + 1 in bits 8-15). */
export function XENMEMF_node(node: number): number {
  return (checkUint('XENMEMF_node', node, MAX_ENCODABLE_NODE, 8) + 1) << NODE_SHIFT;
}

/** `XENMEMF_get_node(flags)`: the node in `mem_flags`, or 0xff when none was named. */
export function XENMEMF_get_node(memFlags: number): number {
  return ((checkUint('mem_flags', memFlags, 0xffff_ffff, 32) >>> NODE_SHIFT) - 1) & 0xff;
}

/** `XENMEMF_exact_node(n)`: node `n` and nothing else. */
export function XENMEMF_exact_node(node: number): number {
  return XENMEMF_node(node) | XENMEMF_exact_node_request;
}

// ---------------------------------------------------------------------------------------------
// cmd helpers.

export interface MemopCmd {
  /** The XENMEM_* sub-op, `cmd & MEMOP_CMD_MASK`. */
  readonly op: number;
  /** `cmd >> MEMOP_EXTENT_SHIFT`: extent to start at; 0 for a fresh call. */
  readonly startExtent: bigint;
}

function wordBits(abi: GuestAbi): bigint {
  return BigInt(abi.wordSize * 8);
}

/**
 * The `cmd` argument of `memory_op` (an `unsigned long`, so as wide as the guest's word):
 * `op | startExtent << MEMOP_EXTENT_SHIFT`. Guests pass `startExtent` 0; Xen itself puts the
 * resume point there when it preempts a reservation op. Throws `AbiRangeError` if `op` does not
 * fit `MEMOP_CMD_MASK` or `startExtent` does not fit the rest of the word.
 */
export function memopCmd(op: number, startExtent: number | bigint = 0, abi: GuestAbi = X86_64): bigint {
  checkUint('memory_op cmd op', op, MEMOP_CMD_MASK, MEMOP_EXTENT_SHIFT);
  const extentBits = wordBits(abi) - BigInt(MEMOP_EXTENT_SHIFT);
  const extent =
    typeof startExtent === 'bigint' ? startExtent : Number.isSafeInteger(startExtent) ? BigInt(startExtent) : -1n;
  if (extent < 0n || extent >= 1n << extentBits) {
    throw new AbiRangeError('memory_op cmd start_extent', String(startExtent), Number(extentBits) / 8, false);
  }
  return BigInt(op) | (extent << BigInt(MEMOP_EXTENT_SHIFT));
}

/** Splits a `memory_op` cmd as Xen does. Throws `AbiRangeError` if `cmd` does not fit the word. */
export function decodeMemopCmd(cmd: number | bigint, abi: GuestAbi = X86_64): MemopCmd {
  const value = typeof cmd === 'bigint' ? cmd : Number.isSafeInteger(cmd) ? BigInt(cmd) : -1n;
  if (value < 0n || value >= 1n << wordBits(abi)) {
    throw new AbiRangeError('memory_op cmd', String(cmd), abi.wordSize, false);
  }
  return Object.freeze({
    op: Number(value & BigInt(MEMOP_CMD_MASK)),
    startExtent: value >> BigInt(MEMOP_EXTENT_SHIFT),
  });
}

// ---------------------------------------------------------------------------------------------
// Structs.

export const xen_memory_reservation = defineStruct({
  name: 'xen_memory_reservation',
  header: 'memory.h',
  doc:
    'Argument of XENMEM_increase_reservation, decrease_reservation and populate_physmap (and, as ' +
    '`in`/`out`, of XENMEM_exchange; claim_pages reuses it). Filled by the guest. The reservation ' +
    'ops return how many extents were completed, counting `start_extent`; a result below ' +
    '`nr_extents` means failure.',
  fields: [
    field('extent_start', guestHandle('xen_pfn_t'), 'Guest VIRTUAL address of an array of `nr_extents` frame numbers, one per extent (the first frame of each). What they mean depends on the op. increase_reservation: OUT, Xen writes the MFN of each new extent; NULL means "do not report". decrease_reservation: IN, the GMFNs to free (MFNs for a PV guest). populate_physmap: IN, the GPFN to back; Xen sets the M2P for it and overwrites the entry with the new MFN (PV), after which the guest must update its own p2m. claim_pages: must be NULL. The handle is written by the guest; the array by the guest and, for OUT entries, by Xen.'),
    field('nr_extents', xen_ulong_t, 'Number of extents in the request (a count, not pages). Written by the guest. The reservation ops complete 0 extents if it exceeds `UINT_MAX >> MEMOP_EXTENT_SHIFT` or if the start extent is not below it.'),
    field('extent_order', unsigned_int, 'log2 of the pages per extent: each extent is 2^extent_order contiguous, naturally aligned frames. Written by the guest. Above the caller\'s limit (9 for an ordinary domU) no extent completes.'),
    field('mem_flags', unsigned_int, 'XENMEMF_* flags. Bits 0-7: widest machine address allowed for the new frames, in bits (0 = no limit); bits 8-15: NUMA node + 1 (0 = any); `XENMEMF_populate_on_demand`, `XENMEMF_exact_node_request`, `XENMEMF_vnode`. Ignored by decrease_reservation and for `XENMEM_exchange` `in`. Written by the guest. Legacy interface versions (< 0x030209) call it `address_bits`.'),
    field('domid', domid_t, 'Domain whose memory changes. Unprivileged callers may name only `DOMID_SELF` (0x7FF0). Written by the guest.'),
  ],
});

export const xen_memory_exchange = defineStruct({
  name: 'xen_memory_exchange',
  header: 'memory.h',
  doc:
    'Argument of XENMEM_exchange: give up the `in` extents and receive `out` extents in their ' +
    'place, e.g. to trade scattered frames for a machine-contiguous or low extent. The result is ' +
    '0 or a negative errno; progress is reported in `nr_exchanged`. The header states the operation ' +
    'is only for PV guests.',
  fields: [
    field('in', struct(xen_memory_reservation), 'Extents to give up: `in.extent_start` lists their GMFNs (MFNs for a PV guest). `in.mem_flags` is ignored. Written by the guest. Invariant: `in.domid == out.domid`.'),
    field('out', struct(xen_memory_reservation), 'Extents to receive. On entry `out.extent_start` lists the GPFNs to back; Xen overwrites each with the new MFN (PV). Invariants: `in.nr_extents << in.extent_order == out.nr_extents << out.extent_order`, and the `in` and `out` lists do not overlap. Written by the guest; list entries updated by Xen.'),
    field('nr_exchanged', xen_ulong_t, 'Number of `in` extents exchanged so far (a count). The caller must set it to 0. Written by Xen: on success it equals `in.nr_extents`; on failure the first `nr_exchanged` input extents are gone, the matching output entries hold valid MFNs, and everything after is untouched.'),
  ],
});

export const xen_memory_domain = defineStruct({
  name: 'xen_memory_domain',
  header: 'memory.h',
  doc:
    'Argument of XENMEM_current_reservation, maximum_reservation and maximum_gpfn. The result is ' +
    'the page count (or the highest GPFN) itself, or a negative errno: -ESRCH for an unknown ' +
    'domain, -EPERM for another domain without privilege.',
  fields: [
    field('domid', domid_t, 'Domain to query; `DOMID_SELF` (0x7FF0) is accepted. Written by the guest.'),
  ],
});

// ---------------------------------------------------------------------------------------------
// Constant groups.

/** Sub-ops and plain XENMEMF_* flags that memory.h gives every guest. */
export const MEMORY_CONSTANTS = constants('memory.h', {
  XENMEM_increase_reservation,
  XENMEM_decrease_reservation,
  XENMEM_maximum_ram_page,
  XENMEM_current_reservation,
  XENMEM_maximum_reservation,
  XENMEM_machphys_mfn_list,
  XENMEM_populate_physmap,
  XENMEM_add_to_physmap,
  XENMEM_memory_map,
  XENMEM_machine_memory_map,
  XENMEM_exchange,
  XENMEM_machphys_mapping,
  XENMEM_set_memory_map,
  XENMEM_maximum_gpfn,
  XENMEM_remove_from_physmap,
  XENMEM_set_pod_target,
  XENMEM_get_pod_target,
  XENMEM_add_to_physmap_batch,
  XENMEM_machphys_compat_mfn_list,
  XENMEM_get_vnumainfo,
  XENMEM_acquire_resource,
  XENMEMF_populate_on_demand,
  XENMEMF_exact_node_request,
  XENMEMF_vnode,
});

/**
 * Sub-ops that memory.h declares only when `__XEN__` or `__XEN_TOOLS__` is defined: a probe must
 * compile this group with `-D__XEN_TOOLS__` (layouts are unaffected by it).
 */
export const MEMORY_TOOLS_CONSTANTS = constants('memory.h', {
  XENMEM_get_sharing_freed_pages,
  XENMEM_get_sharing_shared_pages,
  XENMEM_paging_op,
  XENMEM_access_op,
  XENMEM_sharing_op,
  XENMEM_claim_pages,
  XENMEM_reserved_device_memory_map,
}, {}, { defines: ['__XEN_TOOLS__'] });

/**
 * Sample results of the function-like XENMEMF_* macros, computed by the TypeScript functions
 * above, so the probe holds those functions against the C macros.
 */
export const XENMEMF_MACRO_CONSTANTS = constants(
  'memory.h',
  {
    XENMEMF_address_bits_32: XENMEMF_address_bits(32),
    XENMEMF_node_3: XENMEMF_node(3),
    XENMEMF_exact_node_3: XENMEMF_exact_node(3),
    XENMEMF_get_address_bits_sample: XENMEMF_get_address_bits(XENMEMF_exact_node(3) | XENMEMF_address_bits(32)),
    XENMEMF_get_node_sample: XENMEMF_get_node(XENMEMF_exact_node(3) | XENMEMF_address_bits(32)),
    XENMEMF_get_node_none: XENMEMF_get_node(0),
  },
  {
    XENMEMF_address_bits_32: 'XENMEMF_address_bits(32)',
    XENMEMF_node_3: 'XENMEMF_node(3)',
    XENMEMF_exact_node_3: 'XENMEMF_exact_node(3)',
    XENMEMF_get_address_bits_sample: 'XENMEMF_get_address_bits(XENMEMF_exact_node(3) | XENMEMF_address_bits(32))',
    XENMEMF_get_node_sample: 'XENMEMF_get_node(XENMEMF_exact_node(3) | XENMEMF_address_bits(32))',
    XENMEMF_get_node_none: 'XENMEMF_get_node(0)',
  },
);

/** The cmd encoding, from Xen's own source (no public header defines it). */
export const MEMOP_CONSTANTS = externalConstants(
  'Xen source xen/include/xen/hypercall.h (hypervisor-internal, but fixed: continuations depend on it)',
  { MEMOP_EXTENT_SHIFT, MEMOP_CMD_MASK },
);
