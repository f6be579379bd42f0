/**
 * Pieces shared by the memory_op sub-ops, as Xen has them for PV domains: the caller's extent order
 * limit (xen/common/memory.c `max_order`), the XSM_TARGET rule of the dummy policy
 * (xen/include/xsm/dummy.h), `mem_flags` parsing (memory.c `construct_memop_from_reservation`,
 * `propagate_node`), allocation with the zone and `max_pages` rules (xen/common/page_alloc.c
 * `alloc_domheap_pages`, `assign_pages`), and the frame checks of `guest_remove_page`
 * (memory.c) and `steal_page` (xen/arch/x86/mm.c).
 *
 * The emulated machine keeps no reference counts, so "the page holds references besides its
 * allocation" is approximated by: the frame has a page-table type or is pinned.
 */

import {
  HYPERVISOR_VIRT_END_X86_64,
  HYPERVISOR_VIRT_START_PAE,
  PAGE_SHIFT,
  XENMEMF_exact_node_request,
  XENMEMF_vnode,
} from '../../../abi/index.js';
import type { Domain } from '../../domain.js';
import { INVALID_M2P, PageType } from '../../machine.js';
import type { Xen } from '../../xen.js';

/** x86 `MAX_ORDER` (`CONFIG_PAGEALLOC_MAX_ORDER` = 2 × PAGETABLE_ORDER): the allocator's largest order. */
export const MAX_ORDER = 18;
/** `MAX_NUMNODES` of a default x86 build (`CONFIG_NR_NUMA_NODES`). */
export const MAX_NUMNODES = 64;
/** The emulated machine has one NUMA node, node 0. */
export const MACHINE_NODES = 1;
/** `NUMA_NO_NODE`, also what `XENMEMF_get_node` yields when no node was named. */
const NUMA_NO_NODE = 0xff;
/** `BITS_PER_LONG + PAGE_SHIFT`: the address width meaning "no limit". */
const NO_ADDRESS_LIMIT_BITS = 64 + PAGE_SHIFT;

export const U64_MASK = (1n << 64n) - 1n;

/**
 * The little-endian 32-bit word at byte `at`. Read straight from the bytes: a DataView or a
 * Uint32Array over a small copied struct or extent list would first move its buffer off V8's heap,
 * which costs more than a one-extent call's whole decoding.
 */
export function u32At(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** How to allocate: a frame limit from the address width, and a NUMA node request. */
export interface AllocPolicy {
  /** Allocated frames must lie below this mfn (Infinity: no address limit of the caller's own). */
  readonly limit: number;
  /** Requested node, or undefined for any. */
  readonly node: number | undefined;
  /** Fail rather than fall back to another node. */
  readonly exact: boolean;
}

/** Xen's `max_order(current->domain)`: the largest extent order the caller may use. */
export function callerMaxOrder(xen: Xen, caller: Domain): number {
  return Math.min(xen.maxOrderOf(caller), MAX_ORDER);
}

/**
 * The dummy XSM policy's `XSM_TARGET`: a domain may act on itself, and the control domain on any
 * domain. (The device-model relation `src->target == target` is not modelled.)
 */
export function xsmTargetAllowed(src: Domain, target: Domain): boolean {
  return src === target || src.privileged;
}

/** `get_order_from_pages(n)`: the smallest order whose page count covers n. */
function orderFromPages(n: number): number {
  let order = 0;
  while (2 ** order < n) order++;
  return order;
}

/**
 * Frames below which an allocation limited to `bits` address bits must lie: the allocator's zones
 * (`bits_to_zone`) hold mfns by their highest set bit, and widths up to 13 bits all mean zone 1
 * (mfn 0 and 1).
 */
export function framesBelowBits(bits: number): number {
  return bits <= PAGE_SHIFT + 1 ? 2 : 2 ** (bits - PAGE_SHIFT);
}

/**
 * `propagate_node`: the node part of `mem_flags`. The hardware/control domain may name a node
 * (below MAX_NUMNODES), optionally exact; anyone else's node is ignored, and an exact request from
 * them is refused. Returns undefined when Xen says -EINVAL.
 */
export function propagateNode(caller: Domain, memFlags: number): { node: number | undefined; exact: boolean } | undefined {
  const node = ((memFlags >>> 8) - 1) & 0xff;
  if (node === NUMA_NO_NODE) return { node: undefined, exact: false };
  const exact = (memFlags & XENMEMF_exact_node_request) !== 0;
  if (caller.privileged) {
    if (node >= MAX_NUMNODES) return undefined;
    return { node, exact };
  }
  if (exact) return undefined;
  return { node: undefined, exact: false };
}

/**
 * `construct_memop_from_reservation`'s flag checks: an address width at or below PAGE_SHIFT that
 * would limit anything is -EINVAL, a width covering the whole machine is no limit; then the node.
 * `XENMEMF_vnode` asks the target's vNUMA layout, which emulated PV domains do not have, so it
 * names nothing. Returns undefined when Xen says -EINVAL.
 */
export function reservationPolicy(xen: Xen, caller: Domain, memFlags: number): AllocPolicy | undefined {
  const addressBits = memFlags & 0xff;
  let limit = Infinity;
  if (addressBits !== 0 && addressBits < orderFromPages(xen.machine.maxPage) + PAGE_SHIFT) {
    if (addressBits <= PAGE_SHIFT) return undefined;
    limit = framesBelowBits(addressBits);
  }
  if ((memFlags & XENMEMF_vnode) !== 0) return { limit, node: undefined, exact: false };
  const node = propagateNode(caller, memFlags);
  if (!node) return undefined;
  return { limit, node: node.node, exact: node.exact };
}

/**
 * `memory_exchange`'s policy for the output extents: the address width of `out.mem_flags` (0 is no
 * limit; no -EINVAL for small widths here) and the node from `propagate_node`, checked earlier.
 */
export function exchangePolicy(memFlags: number, node: { node: number | undefined; exact: boolean }): AllocPolicy {
  const bits = memFlags & 0xff || NO_ADDRESS_LIMIT_BITS;
  return { limit: bits >= NO_ADDRESS_LIMIT_BITS ? Infinity : framesBelowBits(bits), ...node };
}

/**
 * `alloc_domheap_pages(d, order, memflags)` for domain `d`, set up once per operation: each call of
 * the returned function takes 2^order contiguous frames owned by `d`, below the policy's limit and
 * `d`'s own clamp (x86_32 domains get frames whose mfn fits the compat m2p). With `refcount` the
 * pages count in `tot_pages` and `assign_pages`' limits apply: the domain must not be over
 * `max_pages` already, and the extent must fit under it. Returns the first mfn, or undefined when
 * the allocation fails.
 */
export function extentAllocator(xen: Xen, d: Domain, order: number, policy: AllocPolicy, refcount: boolean): () => number | undefined {
  const pages = 2 ** order;
  const limit = allocationLimit(xen, d, policy);
  const noSuchNode = requestsMissingNode(policy);
  const machine = xen.machine;
  return () => {
    if (refcount && pages > pagesUnderMaxPages(d)) return undefined;
    if (noSuchNode) return undefined;
    const mfn = machine.allocExtent(d.domid, order, limit);
    if (mfn !== undefined && refcount) d.totPages += pages;
    return mfn;
  };
}

/** Frames below which `alloc_domheap_pages` for `d` allocates: the policy's limit and `d`'s own clamp. */
export function allocationLimit(xen: Xen, d: Domain, policy: AllocPolicy): number {
  return Math.min(policy.limit, xen.allocLimit(d));
}

/** An exact request for a node the machine does not have: every allocation fails. */
export function requestsMissingNode(policy: AllocPolicy): boolean {
  return policy.exact && policy.node !== undefined && policy.node >= MACHINE_NODES;
}

/** Pages `assign_pages` still lets `d` gain: none once it is at or over `max_pages`. */
export function pagesUnderMaxPages(d: Domain): number {
  return d.totPages > d.maxPages ? 0 : d.maxPages - d.totPages;
}

/** Whether a frame is in use as a page table (typed or pinned): it holds references beyond its allocation. */
export function isPageTableInUse(xen: Xen, mfn: number): boolean {
  return xen.machine.pageType(mfn) !== PageType.None || xen.machine.isPinned(mfn);
}

/**
 * Frees an ordinary frame as `free_heap_pages` does: its m2p becomes invalid. `freeFrame` does
 * that itself; going through `Xen.setM2p` first only matters when somebody observes m2p changes.
 */
export function freeGuestFrame(xen: Xen, mfn: number): void {
  if (xen.events.active && xen.machine.m2pOf(mfn) !== INVALID_M2P) xen.setM2p(mfn, INVALID_M2P);
  xen.machine.freeFrame(mfn);
}

/**
 * `guest_remove_page(d, gmfn)` for a PV domain, where the gmfn is the mfn. Fails (Xen: -EINVAL)
 * for an mfn beyond the machine and (-ENXIO) when `get_page` fails: the frame is free or owned by
 * another domain. Otherwise it succeeds and drops the allocation reference. An ordinary page is
 * then freed (`tot_pages` falls by one, its m2p becomes invalid). A Xen heap page shared with the
 * domain (shared_info, grant frames) is never freed that way, and a page-table page still holds
 * type references, so Xen keeps both and the call still counts as done.
 */
export function guestRemovePage(xen: Xen, d: Domain, mfn: number): boolean {
  const machine = xen.machine;
  if (!(mfn < machine.maxPage)) return false;
  if (machine.ownerOf(mfn) !== d.domid) return false;
  if (machine.isXenHeap(mfn) || isPageTableInUse(xen, mfn)) return true;
  freeGuestFrame(xen, mfn);
  d.totPages--;
  return true;
}

/**
 * Whether `steal_page(d, page)` would succeed: the frame belongs to `d`, is not a Xen heap page and
 * holds no reference but its allocation (here: no page-table type, not pinned). Failure is -EINVAL.
 */
export function canStealPage(xen: Xen, d: Domain, mfn: number): boolean {
  const machine = xen.machine;
  return machine.ownerOf(mfn) === d.domid && !machine.isXenHeap(mfn) && !isPageTableInUse(xen, mfn);
}

/** `~0UL / 8`: `array_access_ok`'s element-count bound for xen_pfn_t arrays (a BigInt division per call otherwise). */
const MAX_COUNT_OF_8 = U64_MASK / 8n;

/**
 * `array_access_ok` for an x86_64 PV guest: the element count must not overflow and the first
 * address must lie in the guest's half of the address space (below 2^47, or above Xen's range).
 */
export function nativeArrayAccessOk(base: bigint, first: bigint, count: bigint, size: number): boolean {
  if (!(count < (size === 8 ? MAX_COUNT_OF_8 : U64_MASK / BigInt(size)))) return false;
  // From the first element of a register-sized base (every one-struct copy), the address is the base.
  const addr = first === 0n && base >= 0n && base <= U64_MASK ? base : (base + first * BigInt(size)) & U64_MASK;
  return addr < 1n << 47n || addr >= HYPERVISOR_VIRT_END_X86_64;
}

/**
 * `compat_array_access_ok` for an x86_32 PV guest: the count must not overflow 32 bits and the
 * array's last byte must lie below the compat hypervisor area (`HYPERVISOR_COMPAT_VIRT_START`).
 */
export function compatArrayAccessOk(base: number, count: number, size: number): boolean {
  if (!(count < Math.floor(0xffffffff / size))) return false;
  const bytes = count * size;
  return base + (bytes ? bytes - 1 : 0) < Number(HYPERVISOR_VIRT_START_PAE);
}
