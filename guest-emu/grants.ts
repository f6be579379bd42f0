/**
 * Grants between two emulated guests, after Linux drivers/xen/grant-table.c and
 * arch/x86/xen/p2m.c:
 * - the granter (a frontend) writes a v1 entry in its own grant frame, mapped at a fixmap slot
 *   after GNTTABOP_setup_table (`gnttab_grant_foreign_access`: domid, frame, write barrier, flags
 *   last, one store each), and later ends access with one store of flags = 0 when Xen no longer
 *   has it pinned (`gnttab_end_foreign_access_ref`);
 * - the grantee (a backend) maps the grant with GNTTABOP_map_grant_ref at `__va` of one of its
 *   ballooned pfns, then stores FOREIGN_FRAME(mfn) in that pfn's p2m entry
 *   (`set_foreign_p2m_mapping`); unmapping is the hypercall, then p2m INVALID
 *   (`clear_foreign_p2m_mapping`); the pfn goes back to the balloon.
 * Before a suspend both sides let go (as Linux's frontends and backends disconnect), so a saved
 * image never holds another domain's frames.
 */

import {
  FOREIGN_FRAME_BIT,
  GNTMAP_host_map,
  GNTST_okay,
  GTF_permit_access,
  GTF_reading,
  GTF_writing,
  INVALID_P2M_ENTRY,
  grant_entry_v1,
} from '../abi/index.js';
import { GuestKernelBug, GuestStateError, hex } from './errors.js';
import { FIX_GRANT_FRAME } from './kernel-mm.js';
import { PageUse } from './page-state.js';
import type { PvGuest } from './guest.js';
import type { Operation } from './steps.js';

/** `GNTTAB_NR_RESERVED_ENTRIES`: refs 0–7 belong to the toolstack (console, xenstore). */
const NR_RESERVED_ENTRIES = 8;
/** v1 entries in the one grant frame the guest sets up. */
const ENTRIES_PER_FRAME = 512;

/** One page shared from a granter to a grantee, as both sides know it. */
export interface SharedGrant {
  readonly granter: PvGuest;
  readonly grantee: PvGuest;
  readonly ref: number;
  /** The granter's pfn whose frame is shared. */
  readonly granterPfn: number;
  /** The grantee's (ballooned) pfn that maps it. */
  readonly granteePfn: number;
  /** The grantee's map handle. */
  readonly handle: number;
  /** The shared machine frame. */
  readonly mfn: bigint;
}

/** One guest's grant-table state: its frame, its free refs, and the grants it is part of. */
export class GrantState {
  private ready = false;
  private freeRefs: number[] = [];
  private nextRef = NR_RESERVED_ENTRIES;
  /** Grants this guest gave, by ref. */
  readonly given = new Map<number, SharedGrant>();
  /** Grants this guest maps, by its pfn. */
  readonly mapped = new Map<number, SharedGrant>();

  /** `gnttab_init` / `gnttab_resume`: GNTTABOP_setup_table, then the frame mapped at its fixmap slot. */
  *setup(g: PvGuest): Operation {
    if (this.ready) return;
    const r = g.hc.gnttabSetupTable(1);
    if (r.rc !== 0n || r.status !== GNTST_okay) throw new GuestKernelBug(`GNTTABOP_setup_table (status ${r.status})`, r.rc);
    yield 'GNTTABOP_setup_table';
    yield* g.mm.setFixmap(FIX_GRANT_FRAME, r.frames[0]!, true, 'map the grant frame');
    this.ready = true;
  }

  private entryVa(g: PvGuest, ref: number, field: 'flags' | 'domid' | 'frame'): bigint {
    return g.mm.fixmapVa(FIX_GRANT_FRAME) + BigInt(ref * grant_entry_v1.sizeOf(g.abi) + grant_entry_v1.offsetOf(g.abi, field));
  }

  private *store(g: PvGuest, ref: number, field: 'flags' | 'domid' | 'frame', value: number, label: string): Operation {
    const size = field === 'frame' ? 4 : 2;
    const bytes = new Uint8Array(size);
    const view = new DataView(bytes.buffer);
    if (size === 4) view.setUint32(0, value >>> 0, true);
    else view.setUint16(0, value, true);
    const rc = g.xen.guestStore(g.binding.dom, this.entryVa(g, ref, field), bytes);
    if (rc !== 0) throw new GuestKernelBug(`store of grant entry ${ref}.${field}`, BigInt(rc));
    yield label;
  }

  private allocRef(): number {
    const ref = this.freeRefs.pop() ?? this.nextRef++;
    if (ref >= ENTRIES_PER_FRAME) throw new GuestStateError(`no free grant ref: all ${ENTRIES_PER_FRAME - NR_RESERVED_ENTRIES} in use`);
    return ref;
  }

  /** `gnttab_grant_foreign_access(domid, mfn, 0)`: domid, frame, then flags, one store each. */
  *grantAccess(g: PvGuest, domid: number, mfn: bigint): Operation<number> {
    yield* this.setup(g);
    const ref = this.allocRef();
    yield* this.store(g, ref, 'domid', domid, `grant ${ref}: domid ${domid}`);
    yield* this.store(g, ref, 'frame', Number(mfn), `grant ${ref}: frame mfn ${hex(mfn)}`);
    yield* this.store(g, ref, 'flags', GTF_permit_access, `grant ${ref}: flags GTF_permit_access`);
    return ref;
  }

  /** `gnttab_end_foreign_access_ref`: flags = 0 unless Xen still has the grant pinned (then false). */
  *endAccess(g: PvGuest, ref: number): Operation<boolean> {
    const raw = g.xen.guestLoad(g.binding.dom, this.entryVa(g, ref, 'flags'), 2);
    if (!raw) throw new GuestKernelBug(`load of grant entry ${ref}.flags`, -14n);
    const flags = raw[0]! | (raw[1]! << 8);
    if (flags & (GTF_reading | GTF_writing)) return false;
    yield* this.store(g, ref, 'flags', 0, `grant ${ref}: end access`);
    this.freeRefs.push(ref);
    return true;
  }

  /** Every grant this guest takes part in is released (before a suspend). */
  *teardown(g: PvGuest): Operation {
    for (const s of [...this.given.values(), ...this.mapped.values()]) yield* unshareGrant(s);
    if (this.ready) yield* g.mm.clearFixmap(FIX_GRANT_FRAME, 'unmap the grant frame');
    this.ready = false;
  }
}

/**
 * `granter` grants its page `granterPfn` to `grantee`, which maps it at its ballooned pfn
 * `granteePfn` (in the balloon, or just ballooned out for the purpose and kept) and records
 * FOREIGN_FRAME(mfn) in its p2m. With `stamp`, the grantee then writes
 * the page (a backend filling a frontend's buffer: a store into the granter's frame). Undefined
 * when Xen refused the map (nothing stays shared).
 */
export function* shareGrant(granter: PvGuest, grantee: PvGuest, granterPfn: number, granteePfn: number, stamp?: number): Operation<SharedGrant | undefined> {
  if (granter.pages.use(granterPfn) !== PageUse.Free) throw new GuestStateError(`pfn ${hex(granterPfn)} of domain ${granter.domid} is not free memory to grant`);
  const granteeUse = grantee.pages.use(granteePfn);
  if ((granteeUse !== PageUse.Ballooned && granteeUse !== PageUse.Transit) || !grantee.mm.isLowmem(granteePfn)) {
    throw new GuestStateError(`pfn ${hex(granteePfn)} of domain ${grantee.domid} is not a ballooned lowmem pfn to map a grant on`);
  }
  // Both pages are taken before the first step, as the kernels' allocators would have.
  granter.pages.setUse(granterPfn, PageUse.Granted);
  grantee.pages.setUse(granteePfn, PageUse.Foreign);
  const mfn = granter.mfnOf(granterPfn);
  const ref = yield* granter.grants.grantAccess(granter, grantee.domid, mfn);

  const va = grantee.mm.directVa(granteePfn);
  yield* grantee.mm.ensureTable(1, va);
  const r = grantee.hc.gnttabMap(va, GNTMAP_host_map, ref, granter.domid);
  yield `GNTTABOP_map_grant_ref d${granter.domid} ref ${ref} at __va(pfn ${hex(granteePfn)}): status ${r.status}`;
  if (r.rc !== 0n || r.status !== GNTST_okay) {
    yield* granter.grants.endAccess(granter, ref);
    granter.pages.setUse(granterPfn, PageUse.Free);
    grantee.pages.setUse(granteePfn, PageUse.Ballooned);
    return undefined;
  }
  const mapped = r.devBusAddr >> 12n;
  yield* grantee.list.set(granteePfn, mapped | FOREIGN_FRAME_BIT(grantee.abi), `p2m[${hex(granteePfn)}] = FOREIGN_FRAME(${hex(mapped)})`);
  const s: SharedGrant = { granter, grantee, ref, granterPfn, granteePfn, handle: r.handle, mfn: mapped };
  granter.grants.given.set(ref, s);
  grantee.grants.mapped.set(granteePfn, s);
  if (stamp !== undefined) {
    const rc = grantee.xen.guestStorePage(grantee.binding.dom, va, stamp);
    if (rc !== 0) throw new GuestKernelBug('store into a mapped grant', BigInt(rc), granteePfn);
    yield `d${grantee.domid} writes granted page of d${granter.domid} (stamp ${hex(stamp)})`;
  }
  return s;
}

/** The grantee unmaps (hypercall, then p2m INVALID; its pfn back in the balloon), then the granter ends access. */
export function* unshareGrant(s: SharedGrant): Operation {
  const { granter, grantee } = s;
  const va = grantee.mm.directVa(s.granteePfn);
  const r = grantee.hc.gnttabUnmap(va, s.handle);
  if (r.rc !== 0n || r.status !== GNTST_okay) throw new GuestKernelBug(`GNTTABOP_unmap_grant_ref handle ${s.handle} (status ${r.status})`, r.rc, s.granteePfn);
  yield `GNTTABOP_unmap_grant_ref handle ${s.handle} at __va(pfn ${hex(s.granteePfn)})`;
  yield* grantee.list.set(s.granteePfn, INVALID_P2M_ENTRY(grantee.abi), `p2m[${hex(s.granteePfn)}] = INVALID (grant unmapped)`);
  grantee.pages.setUse(s.granteePfn, PageUse.Ballooned);
  grantee.grants.mapped.delete(s.granteePfn);
  if (!(yield* granter.grants.endAccess(granter, s.ref))) throw new GuestKernelBug(`grant ${s.ref} still in use after its only mapping went`, -16n);
  granter.pages.setUse(s.granterPfn, PageUse.Free);
  granter.grants.given.delete(s.ref);
}
