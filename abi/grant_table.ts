/**
 * Mirrors `xen/include/public/grant_table.h`: grant entries (v1 and v2), the argument structs of
 * the `grant_table_op` hypercall, and its GTF_*, GNTMAP_*, GNTCOPY_* and GNTST_* constants.
 * Names are those of interface version 0x00040e00 (`grant_entry_v1`, not the legacy `grant_entry`).
 *
 * A grant table is an array of entries in frames shared by a guest (the granter, which fills
 * entries in) and Xen (which reads them and marks them in use). A grant reference is an index
 * into that array; another domain (the grantee) presents it to map, copy or transfer the frame.
 * Grant maps and transfers change a PV guest's p2m, so they are among the p2m changes that race
 * live migration.
 */

import {
  array,
  domid_t,
  field,
  grant_handle_t,
  grant_ref_t,
  guestHandle,
  inlineStruct,
  inlineUnion,
  int16_t,
  struct,
  uint16_t,
  uint32_t,
  uint64_t,
  xen_pfn_t,
} from './ctype.js';
import { constants, externalConstants } from './constants.js';
import { defineStruct } from './struct.js';

// ---------------------------------------------------------------------------------------------
// Reserved entries: kept across version changes and possibly filled in by the domain builder.

export const GNTTAB_NR_RESERVED_ENTRIES = 8;
/** Ref the toolstack uses to grant the console ring to the console backend. */
export const GNTTAB_RESERVED_CONSOLE = 0;
/** Ref the toolstack uses to grant the xenstore ring to xenstored. */
export const GNTTAB_RESERVED_XENSTORE = 1;

// ---------------------------------------------------------------------------------------------
// GTF_*: grant entry `flags`. Bits 0-1 are the entry type.

export const GTF_invalid = 0;
export const GTF_permit_access = 1;
export const GTF_accept_transfer = 2;
export const GTF_transitive = 3;
export const GTF_type_mask = 3;

// Sub-flags of permit_access and transitive entries.
export const _GTF_readonly = 2;
/** Grantee may only map/access read-only. Written by the guest. */
export const GTF_readonly = 1 << _GTF_readonly;
export const _GTF_reading = 3;
/** Entry is mapped for reading by the grantee. Written by Xen (v1 only; v2 uses status frames). */
export const GTF_reading = 1 << _GTF_reading;
export const _GTF_writing = 4;
/** Entry is mapped for writing by the grantee. Written by Xen (v1 only; v2 uses status frames). */
export const GTF_writing = 1 << _GTF_writing;
// x86 cache attributes for mappings of the grant (permit_access only). Written by the guest.
export const _GTF_PWT = 5;
export const GTF_PWT = 1 << _GTF_PWT;
export const _GTF_PCD = 6;
export const GTF_PCD = 1 << _GTF_PCD;
export const _GTF_PAT = 7;
export const GTF_PAT = 1 << _GTF_PAT;
export const _GTF_sub_page = 8;
/** Only a byte range of the frame is granted; the grantee may copy from it but not map it. */
export const GTF_sub_page = 1 << _GTF_sub_page;

// Sub-flags of accept_transfer entries (same bit positions as readonly/reading).
export const _GTF_transfer_committed = 2;
/** Xen has committed to a transfer; the guest must not touch the entry until it completes. */
export const GTF_transfer_committed = 1 << _GTF_transfer_committed;
export const _GTF_transfer_completed = 3;
/** Xen has written the transferred frame's MFN into `frame` (set after it). */
export const GTF_transfer_completed = 1 << _GTF_transfer_completed;

// ---------------------------------------------------------------------------------------------
// GNTTABOP_*: grant_table_op sub-ops.

export const GNTTABOP_map_grant_ref = 0;
export const GNTTABOP_unmap_grant_ref = 1;
export const GNTTABOP_setup_table = 2;
export const GNTTABOP_dump_table = 3;
export const GNTTABOP_transfer = 4;
export const GNTTABOP_copy = 5;
export const GNTTABOP_query_size = 6;
export const GNTTABOP_unmap_and_replace = 7;
export const GNTTABOP_set_version = 8;
export const GNTTABOP_get_status_frames = 9;
export const GNTTABOP_get_version = 10;
export const GNTTABOP_swap_grant_ref = 11;
export const GNTTABOP_cache_flush = 12;

// cmd encoding. Not in any public header: Xen defines these in `xen/common/grant_table.c` and
// treats them as ABI, since a guest suspended inside a continuation resumes with them.
export const GNTTABOP_CONTINUATION_ARG_SHIFT = 12;
/** `cmd & GNTTABOP_CMD_MASK` is the sub-op; upper bits are Xen's (only cache_flush allows them). */
export const GNTTABOP_CMD_MASK = (1 << GNTTABOP_CONTINUATION_ARG_SHIFT) - 1;

// ---------------------------------------------------------------------------------------------
// GNTMAP_*: `gnttab_map_grant_ref.flags`.

export const _GNTMAP_device_map = 0;
/** Map for I/O devices; Xen returns the bus address in `dev_bus_addr`. */
export const GNTMAP_device_map = 1 << _GNTMAP_device_map;
export const _GNTMAP_host_map = 1;
/** Map for CPU access at `host_addr`. */
export const GNTMAP_host_map = 1 << _GNTMAP_host_map;
export const _GNTMAP_readonly = 2;
export const GNTMAP_readonly = 1 << _GNTMAP_readonly;
export const _GNTMAP_application_map = 3;
/** With host_map: the mapping is usable by the current application too, not only the kernel. */
export const GNTMAP_application_map = 1 << _GNTMAP_application_map;
export const _GNTMAP_contains_pte = 4;
/** With host_map: `host_addr` is the MACHINE address of the PTE to write, not a VIRTUAL address. */
export const GNTMAP_contains_pte = 1 << _GNTMAP_contains_pte;
export const _GNTMAP_guest_avail0 = 16;
/** Bits 16-31: copied into the PTE's software-available bits (needs XENFEAT_gnttab_map_avail_bits). */
export const GNTMAP_guest_avail_mask = (~0 << _GNTMAP_guest_avail0) >>> 0;

// ---------------------------------------------------------------------------------------------
// GNTCOPY_*: `gnttab_copy.flags`. A side without its flag names a frame (`u.gmfn`) instead of a
// grant reference (`u.ref`).

export const _GNTCOPY_source_gref = 0;
export const GNTCOPY_source_gref = 1 << _GNTCOPY_source_gref;
export const _GNTCOPY_dest_gref = 1;
export const GNTCOPY_dest_gref = 1 << _GNTCOPY_dest_gref;

// ---------------------------------------------------------------------------------------------
// GNTTAB_CACHE_*: `gnttab_cache_flush.op`.

export const GNTTAB_CACHE_CLEAN = 1 << 0;
export const GNTTAB_CACHE_INVAL = 1 << 1;
export const GNTTAB_CACHE_SOURCE_GREF = 2 ** 31;

// ---------------------------------------------------------------------------------------------
// GNTST_*: per-element `status` (int16_t). Zero is success; every error is negative.

export const GNTST_okay = 0;
export const GNTST_general_error = -1;
export const GNTST_bad_domain = -2;
export const GNTST_bad_gntref = -3;
export const GNTST_bad_handle = -4;
export const GNTST_bad_virt_addr = -5;
export const GNTST_bad_dev_addr = -6;
export const GNTST_no_device_space = -7;
export const GNTST_permission_denied = -8;
export const GNTST_bad_page = -9;
export const GNTST_bad_copy_arg = -10;
export const GNTST_address_too_big = -11;
export const GNTST_eagain = -12;
export const GNTST_no_space = -13;

/**
 * Xen's `GNTTABOP_error_msgs` strings, in header order: entry `i` describes status `-i`. These are
 * data, reproduced exactly (the probe compares them with the header), typos included.
 */
export const GNTTABOP_error_msgs: readonly string[] = Object.freeze([
  'okay',
  'undefined error',
  'unrecognised domain id',
  'invalid grant reference',
  'invalid mapping handle',
  'invalid virtual address',
  'invalid device address',
  'no spare translation slot in the I/O MMU',
  'permission denied',
  'bad page',
  'copy arguments cross page boundary',
  'page address size too large',
  'operation not done; try again',
  'out of space',
]);

// ---------------------------------------------------------------------------------------------
// Grant entries.

export const grant_entry_v1 = defineStruct({
  name: 'grant_entry_v1',
  header: 'grant_table.h',
  doc:
    'One version-1 grant entry: 8 bytes, 512 per frame, same on both ABIs. To publish an entry ' +
    'the guest writes `domid` and `frame`, issues a write barrier, then writes `flags` with the ' +
    'type last. It may clear an unused permit_access entry only with a cmpxchg of `flags` that ' +
    'checks GTF_reading and GTF_writing are clear. Legacy interface versions (< 0x03020a) call ' +
    'it `grant_entry`.',
  fields: [
    field('flags', uint16_t, 'GTF_* type (bits 0-1) and sub-flags. The guest writes the type, GTF_readonly, the cache attributes and GTF_sub_page; Xen sets and clears GTF_reading/GTF_writing while the grantee has the frame mapped, and sets GTF_transfer_committed/GTF_transfer_completed on accept_transfer entries. Xen updates it with cmpxchg together with `domid`.'),
    field('domid', domid_t, 'The grantee: the only domain that may use this entry. Written by the guest.'),
    field('frame', uint32_t, 'permit_access: the GFN the grantee may map or access (an MFN for a PV guest). accept_transfer: written by the guest as the GFN slot to receive the page (0 if none); once GTF_transfer_completed is set, Xen has replaced it with the MFN of the transferred frame (non-translated guests). 32 bits, so v1 cannot grant frames at or above 2^32.'),
  ],
});

export const grant_entry_header = defineStruct({
  name: 'grant_entry_header',
  header: 'grant_table.h',
  doc:
    'The first 4 bytes of every version-2 grant entry, shared by all its shapes. In v2 the ' +
    'reading/writing state is not in `flags` but in separate status frames (`grant_status_t`, ' +
    'one uint16_t per entry).',
  fields: [
    field('flags', uint16_t, 'GTF_* type (bits 0-1) and the guest-written sub-flags (GTF_readonly, cache attributes, GTF_sub_page). Written by the guest; Xen sets the transfer flags on accept_transfer entries.'),
    field('domid', domid_t, 'The grantee: the only domain that may use this entry. Written by the guest.'),
  ],
});

export const grant_entry_v2 = defineStruct({
  name: 'grant_entry_v2',
  kind: 'union',
  header: 'grant_table.h',
  doc:
    'One version-2 grant entry: 16 bytes, 256 per frame, same offsets on both ABIs. Which member ' +
    'applies follows from `hdr.flags`: full_page for accept_transfer and for permit_access ' +
    'without GTF_sub_page, sub_page for permit_access with GTF_sub_page, transitive for ' +
    'GTF_transitive. The publication order is as for v1: body first, barrier, `hdr.flags` last.',
  fields: [
    field('hdr', struct(grant_entry_header), 'The common header: type, flags and grantee.'),
    field(
      'full_page',
      inlineStruct([
        field('hdr', struct(grant_entry_header), 'The common header.'),
        field('pad0', uint32_t, 'Padding. Unused.'),
        field('frame', uint64_t, 'As `grant_entry_v1.frame`, but 64 bits wide: the GFN granted (MFN for a PV guest), or for accept_transfer the slot to fill, replaced by Xen with the new MFN.'),
      ]),
      'A whole frame: an accept_transfer entry, or permit_access without GTF_sub_page.',
    ),
    field(
      'sub_page',
      inlineStruct([
        field('hdr', struct(grant_entry_header), 'The common header.'),
        field('page_off', uint16_t, 'First byte of the granted range within the frame. Written by the guest. Invariant: `page_off + length <= 4096`.'),
        field('length', uint16_t, 'Length in bytes of the granted range. Written by the guest.'),
        field('frame', uint64_t, 'GFN of the frame holding the range (MFN for a PV guest). Written by the guest.'),
      ]),
      'Bytes [page_off, page_off + length) of a frame: permit_access with GTF_sub_page. The grantee may copy but not map.',
    ),
    field(
      'transitive',
      inlineStruct([
        field('hdr', struct(grant_entry_header), 'The common header.'),
        field('trans_domid', domid_t, 'Domain whose grant is passed on. Written by the guest.'),
        field('pad0', uint16_t, 'Padding. Unused.'),
        field('gref', grant_ref_t, 'Grant reference in `trans_domid`\'s table that the grantee may use as if it were this domain. Written by the guest.'),
      ]),
      'A GTF_transitive entry: re-grants another domain\'s grant. Xen does not allow it to be mapped, only copied.',
    ),
    field('__spacer', array(uint32_t, 4), 'Pads the union to 16 bytes (a power of two). Unused.'),
  ],
});

// ---------------------------------------------------------------------------------------------
// grant_table_op arguments. Each op takes an array of `count` of these; the hypercall returns 0
// once the batch is processed, and each element's result is in its own `status`.

export const gnttab_map_grant_ref = defineStruct({
  name: 'gnttab_map_grant_ref',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_map_grant_ref: map grant `ref` of domain `dom` for the CPU and/or devices. Xen copies ' +
    'the whole struct back. Mappings must be removed with GNTTABOP_unmap_grant_ref; one removed ' +
    'any other way may be accounted to the wrong grant. Same layout on both ABIs.',
  fields: [
    field('host_addr', uint64_t, 'IN, with GNTMAP_host_map: the VIRTUAL address in the current address space to map the frame at, or with GNTMAP_contains_pte the MACHINE address of the PTE to write. Written by the guest.'),
    field('flags', uint32_t, 'IN: GNTMAP_* flags. At least one of GNTMAP_device_map and GNTMAP_host_map is required (GNTST_bad_gntref otherwise). Written by the guest.'),
    field('ref', grant_ref_t, 'IN: grant reference, an index into `dom`\'s grant table. Written by the guest.'),
    field('dom', domid_t, 'IN: the granting domain. Written by the guest.'),
    field('status', int16_t, 'OUT: GNTST_* result of this element. Written by Xen.'),
    field('handle', grant_handle_t, 'OUT: handle of the new mapping, to present to unmap. Valid only when `status` is GNTST_okay. Written by Xen.'),
    field('dev_bus_addr', uint64_t, 'OUT, with GNTMAP_device_map: the bus address through which devices reach the frame (its MACHINE address for a PV guest). Written by Xen.'),
  ],
});

export const gnttab_unmap_grant_ref = defineStruct({
  name: 'gnttab_unmap_grant_ref',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_unmap_grant_ref: remove mappings made by map_grant_ref. When a batch returns, no ' +
    'stale mapping remains in CPU or device TLBs. Same layout on both ABIs.',
  fields: [
    field('host_addr', uint64_t, 'IN: the `host_addr` used to map (VIRTUAL address, or PTE MACHINE address with GNTMAP_contains_pte); 0 leaves the host mapping alone. Written by the guest.'),
    field('dev_bus_addr', uint64_t, 'IN: the `dev_bus_addr` returned by the map; 0 leaves the device mapping alone; a different non-zero value gives GNTST_bad_dev_addr. Written by the guest.'),
    field('handle', grant_handle_t, 'IN: the handle returned by the map. Written by the guest.'),
    field('status', int16_t, 'OUT: GNTST_* result of this element. Written by Xen.'),
  ],
});

export const gnttab_setup_table = defineStruct({
  name: 'gnttab_setup_table',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_setup_table: grow `dom`\'s grant table to at least `nr_frames` frames and list them. ' +
    'The call takes exactly one element (count != 1 is -EINVAL). Only `status` (and the list) is ' +
    'written back. Translated on x86_32 (the frame list is narrower).',
  fields: [
    field('dom', domid_t, 'IN: the domain, normally `DOMID_SELF`; another domain needs privilege. Written by the guest.'),
    field('nr_frames', uint32_t, 'IN: number of frames wanted, and the length of `frame_list` (a count). Beyond the domain\'s maximum the result is GNTST_general_error. Written by the guest.'),
    field('status', int16_t, 'OUT: GNTST_* result. Written by Xen.'),
    field('frame_list', guestHandle('xen_pfn_t'), 'IN: guest VIRTUAL address of an array of `nr_frames` xen_pfn_t; Xen writes the grant table\'s frame numbers there (MFNs for a PV guest), only the first `nr_frames` even if the table is larger. A frame that does not fit 32 bits gives an x86_32 caller GNTST_address_too_big.'),
  ],
});

export const gnttab_dump_table = defineStruct({
  name: 'gnttab_dump_table',
  header: 'grant_table.h',
  doc: 'GNTTABOP_dump_table: print `dom`\'s grant table on Xen\'s console (debugging only). Same layout on both ABIs.',
  fields: [
    field('dom', domid_t, 'IN: the domain, `DOMID_SELF` or another with privilege. Written by the guest.'),
    field('status', int16_t, 'OUT: GNTST_* result. Written by Xen.'),
  ],
});

export const gnttab_transfer = defineStruct({
  name: 'gnttab_transfer',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_transfer (PV guests only): give the frame `mfn` to domain `domid`, which offered ' +
    'an accept_transfer entry at `ref`. Unless the result is GNTST_bad_page, the caller loses the ' +
    'page even when the transfer fails. Translated on x86_32.',
  fields: [
    field('mfn', xen_pfn_t, 'IN: the frame to give away, an MFN (a GMFN, which for a PV guest is the MFN). Written by the guest.'),
    field('domid', domid_t, 'IN: the receiving domain. Written by the guest.'),
    field('ref', grant_ref_t, 'IN: the receiver\'s accept_transfer grant reference. Written by the guest.'),
    field('status', int16_t, 'OUT: GNTST_* result. Written by Xen.'),
  ],
});

export const gnttab_copy_ptr = defineStruct({
  name: 'gnttab_copy_ptr',
  header: 'grant_table.h',
  doc:
    'One side (source or destination) of a GNTTABOP_copy element: a grant reference or a frame, ' +
    'a domain and an offset. Declared inside `struct gnttab_copy` in the header.',
  fields: [
    field(
      'u',
      inlineUnion([
        field('ref', grant_ref_t, 'Grant reference in `domid`\'s table, when this side\'s GNTCOPY_*_gref flag is set.'),
        field('gmfn', xen_pfn_t, 'Frame number (GMFN; an MFN for a PV guest) when the flag is clear; `domid` must then be `DOMID_SELF`, or the result is GNTST_permission_denied.'),
      ]),
      'What to copy from or to. Written by the guest.',
    ),
    field('domid', domid_t, 'Domain owning the frame or the grant. Written by the guest.'),
    field('offset', uint16_t, 'Byte offset within the frame. Invariant: `offset + len <= 4096`, or the result is GNTST_bad_copy_arg. Written by the guest.'),
  ],
});

export const gnttab_copy = defineStruct({
  name: 'gnttab_copy',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_copy: Xen copies `len` bytes from `source` to `dest`, each a grant reference or a ' +
    'local frame. A third domain can copy between two others that both granted it access. ' +
    'Translated on x86_32.',
  fields: [
    field('source', struct(gnttab_copy_ptr), 'IN: where to copy from. Written by the guest.'),
    field('dest', struct(gnttab_copy_ptr), 'IN: where to copy to. Written by the guest.'),
    field('len', uint16_t, 'IN: number of bytes to copy; neither side may cross its page. Written by the guest.'),
    field('flags', uint16_t, 'IN: GNTCOPY_source_gref and/or GNTCOPY_dest_gref, saying which sides are grant references. Written by the guest.'),
    field('status', int16_t, 'OUT: GNTST_* result. Written by Xen.'),
  ],
});

export const gnttab_query_size = defineStruct({
  name: 'gnttab_query_size',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_query_size: the current and maximum size of `dom`\'s grant table, in frames. Takes ' +
    'exactly one element; Xen copies the whole struct back. Same layout on both ABIs.',
  fields: [
    field('dom', domid_t, 'IN: the domain, `DOMID_SELF` or another with privilege. Written by the guest.'),
    field('nr_frames', uint32_t, 'OUT: frames currently in the table. Written by Xen.'),
    field('max_nr_frames', uint32_t, 'OUT: the most frames the table may grow to (64 by default). Written by Xen.'),
    field('status', int16_t, 'OUT: GNTST_* result. Written by Xen.'),
  ],
});

export const gnttab_unmap_and_replace = defineStruct({
  name: 'gnttab_unmap_and_replace',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_unmap_and_replace: remove the grant mapping at `host_addr` and, in the same PTE ' +
    'update, put there the mapping currently at `new_addr`, which is cleared. Same layout on both ABIs.',
  fields: [
    field('host_addr', uint64_t, 'IN: VIRTUAL address (or PTE MACHINE address) of the grant mapping to remove. Written by the guest.'),
    field('new_addr', uint64_t, 'IN: VIRTUAL address whose current mapping replaces it; that address is left unmapped. Written by the guest.'),
    field('handle', grant_handle_t, 'IN: the handle returned by the map. Written by the guest.'),
    field('status', int16_t, 'OUT: GNTST_* result. Written by Xen.'),
  ],
});

export const gnttab_set_version = defineStruct({
  name: 'gnttab_set_version',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_set_version: switch the caller\'s grant table format to version 1 or 2; only while ' +
    'no non-reserved grant is in use. Errors are hypercall results (-EINVAL, -ENOSYS, -EBUSY, ' +
    '-EAGAIN, -ERANGE), not a status field. Same layout on both ABIs.',
  fields: [
    field('version', uint32_t, 'IN: the version wanted (1 or 2). OUT: the version in effect. Written by the guest, then by Xen.'),
  ],
});

export const gnttab_get_status_frames = defineStruct({
  name: 'gnttab_get_status_frames',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_get_status_frames: list the v2 status frames of `dom` (one uint16_t grant_status_t ' +
    'per entry, 2048 per frame). Takes exactly one element. Translated on x86_32.',
  fields: [
    field('nr_frames', uint32_t, 'IN: length of `frame_list` (a count); only that many are written even if there are more. Written by the guest.'),
    field('dom', domid_t, 'IN: the domain, `DOMID_SELF` or another with privilege. Written by the guest.'),
    field('status', int16_t, 'OUT: GNTST_* result. Written by Xen.'),
    field('frame_list', guestHandle('uint64_t'), 'IN: guest VIRTUAL address of an array of `nr_frames` uint64_t; Xen writes the status frames\' GFNs there (MFNs for a PV guest). The handle itself is one guest word wide; the elements are 64-bit on both ABIs.'),
  ],
});

export const gnttab_get_version = defineStruct({
  name: 'gnttab_get_version',
  header: 'grant_table.h',
  doc: 'GNTTABOP_get_version: the grant table format in effect for `dom`. Same layout on both ABIs.',
  fields: [
    field('dom', domid_t, 'IN: the domain, `DOMID_SELF` or another with privilege. Written by the guest.'),
    field('pad', uint16_t, 'Padding. Unused.'),
    field('version', uint32_t, 'OUT: 1 or 2. Written by Xen.'),
  ],
});

export const gnttab_swap_grant_ref = defineStruct({
  name: 'gnttab_swap_grant_ref',
  header: 'grant_table.h',
  doc: 'GNTTABOP_swap_grant_ref: exchange the contents of two of the caller\'s grant entries. Same layout on both ABIs.',
  fields: [
    field('ref_a', grant_ref_t, 'IN: first grant reference. Written by the guest.'),
    field('ref_b', grant_ref_t, 'IN: second grant reference. Written by the guest.'),
    field('status', int16_t, 'OUT: GNTST_* result. Written by Xen.'),
  ],
});

export const gnttab_cache_flush = defineStruct({
  name: 'gnttab_cache_flush',
  header: 'grant_table.h',
  doc:
    'GNTTABOP_cache_flush: clean and/or invalidate data cache lines of a granted or local frame ' +
    '(for devices that do not snoop CPU caches). No status field: errors are hypercall results. Same ' +
    'layout on both ABIs.',
  fields: [
    field(
      'a',
      inlineUnion([
        field('dev_bus_addr', uint64_t, 'Bus (MACHINE) address of a local frame, when GNTTAB_CACHE_SOURCE_GREF is clear.'),
        field('ref', grant_ref_t, 'Grant reference, when GNTTAB_CACHE_SOURCE_GREF is set.'),
      ]),
      'IN: the frame to operate on. Written by the guest.',
    ),
    field('offset', uint16_t, 'IN: byte offset from the start of the grant or frame. Written by the guest.'),
    field('length', uint16_t, 'IN: number of bytes within the grant. Written by the guest.'),
    field('op', uint32_t, 'IN: GNTTAB_CACHE_CLEAN, GNTTAB_CACHE_INVAL, and GNTTAB_CACHE_SOURCE_GREF to say `a` is a grant reference. Written by the guest.'),
  ],
});

// ---------------------------------------------------------------------------------------------
// Status helpers.

const GNTST_NAMES = Object.freeze({
  GNTST_okay,
  GNTST_general_error,
  GNTST_bad_domain,
  GNTST_bad_gntref,
  GNTST_bad_handle,
  GNTST_bad_virt_addr,
  GNTST_bad_dev_addr,
  GNTST_no_device_space,
  GNTST_permission_denied,
  GNTST_bad_page,
  GNTST_bad_copy_arg,
  GNTST_address_too_big,
  GNTST_eagain,
  GNTST_no_space,
});

/** Xen's message for a GNTST_* status, or `unknown grant status N` for anything else. */
export function gntstMessage(status: number): string {
  const index = -status;
  if (Number.isInteger(index) && index >= 0 && index < GNTTABOP_error_msgs.length) {
    return GNTTABOP_error_msgs[index];
  }
  return `unknown grant status ${status}`;
}

/** The GNTST_* name of a status (`GNTST_bad_gntref`), or `GNTST(N)` for an unknown value. */
export function gntstName(status: number): string {
  const found = Object.entries(GNTST_NAMES).find(([, value]) => value === status);
  return found ? found[0] : `GNTST(${status})`;
}

// ---------------------------------------------------------------------------------------------
// Constant groups.

export const GRANT_TABLE_CONSTANTS = constants('grant_table.h', {
  GNTTAB_NR_RESERVED_ENTRIES,
  GNTTAB_RESERVED_CONSOLE,
  GNTTAB_RESERVED_XENSTORE,
  GTF_invalid,
  GTF_permit_access,
  GTF_accept_transfer,
  GTF_transitive,
  GTF_type_mask,
  _GTF_readonly,
  GTF_readonly,
  _GTF_reading,
  GTF_reading,
  _GTF_writing,
  GTF_writing,
  _GTF_PWT,
  GTF_PWT,
  _GTF_PCD,
  GTF_PCD,
  _GTF_PAT,
  GTF_PAT,
  _GTF_sub_page,
  GTF_sub_page,
  _GTF_transfer_committed,
  GTF_transfer_committed,
  _GTF_transfer_completed,
  GTF_transfer_completed,
  GNTTABOP_map_grant_ref,
  GNTTABOP_unmap_grant_ref,
  GNTTABOP_setup_table,
  GNTTABOP_dump_table,
  GNTTABOP_transfer,
  GNTTABOP_copy,
  GNTTABOP_query_size,
  GNTTABOP_unmap_and_replace,
  GNTTABOP_set_version,
  GNTTABOP_get_status_frames,
  GNTTABOP_get_version,
  GNTTABOP_swap_grant_ref,
  GNTTABOP_cache_flush,
  _GNTMAP_device_map,
  GNTMAP_device_map,
  _GNTMAP_host_map,
  GNTMAP_host_map,
  _GNTMAP_readonly,
  GNTMAP_readonly,
  _GNTMAP_application_map,
  GNTMAP_application_map,
  _GNTMAP_contains_pte,
  GNTMAP_contains_pte,
  _GNTMAP_guest_avail0,
  GNTMAP_guest_avail_mask,
  _GNTCOPY_source_gref,
  GNTCOPY_source_gref,
  _GNTCOPY_dest_gref,
  GNTCOPY_dest_gref,
  GNTTAB_CACHE_CLEAN,
  GNTTAB_CACHE_INVAL,
  GNTTAB_CACHE_SOURCE_GREF,
  ...GNTST_NAMES,
});

/** The cmd encoding, from Xen's own source (no public header defines it). */
export const GNTTABOP_CMD_CONSTANTS = externalConstants(
  'Xen source xen/common/grant_table.c (hypervisor-internal, but fixed: continuations depend on it)',
  { GNTTABOP_CONTINUATION_ARG_SHIFT, GNTTABOP_CMD_MASK },
);
