/**
 * Watches a guest's p2m_generation through the Xen event stream (stores into its shared_info
 * frame), and every page-table write Xen makes into the frames that map its linear list (the PMD
 * table and the p2m PTE pages): each such write must happen while the generation is odd, each bump
 * must add one, and the only other value stored is the reset to 0 on (re)publication.
 */

import { shared_info } from '../../../abi/index.js';
import type { StoreEvent, XenEvent } from '../../../xen-emu/events.js';
import type { PvGuest } from '../../../guest-emu/guest.js';

export interface GenerationMonitor {
  /** Every generation value stored, in order. */
  readonly values: bigint[];
  /** Page-table writes into list-mapping frames, with the generation at the time. */
  readonly ptWrites: { mfn: number; offset: number; generation: bigint }[];
  /** Violations, in the kit's failure shape. */
  readonly problems: string[];
  /** The generation as last stored. */
  current(): bigint;
  stop(): void;
}

export function monitorGeneration(g: PvGuest): GenerationMonitor {
  const xen = g.xen;
  const genAt = shared_info.offsetOf(g.abi, 'arch.p2m_generation');
  const values: bigint[] = [];
  const ptWrites: GenerationMonitor['ptWrites'] = [];
  const problems: string[] = [];
  let gen = g.booted ? g.readShared('p2m_generation') : 0n;
  let tableChanges = -1;
  let tablePfns = new Set<number>();
  const refreshTables = (): void => {
    if (tableChanges === g.stats.structuralChanges) return;
    tableChanges = g.stats.structuralChanges;
    tablePfns = new Set<number>([g.list.pmdTablePfn, ...Array.from(g.list.ptePfn).filter((p) => p >= 0)]);
  };
  const onStore = (e: StoreEvent): void => {
    if (e.domid !== g.domid) return;
    if (e.mfn === g.binding.dom.sharedInfoMfn && e.offset === genAt && e.by === 'guest') {
      const v = e.value ?? -1n;
      if (v !== 0n && v !== gen + 1n) problems.push(`Fail: p2m_generation store, expected 0 or ${gen + 1n}, got ${v}`);
      values.push(v);
      gen = v;
      return;
    }
    if (e.by !== 'xen' || !g.booted) return;
    refreshTables();
    if (!tablePfns.has(e.pfn)) return;
    ptWrites.push({ mfn: e.mfn, offset: e.offset, generation: gen });
    if ((gen & 1n) === 0n) problems.push(`Fail: page-table write into p2m table mfn 0x${e.mfn.toString(16)} offset 0x${e.offset.toString(16)}, expected an odd p2m_generation, got ${gen}`);
  };
  const stop = xen.events.subscribe((e: XenEvent) => {
    if (e.type === 'store') onStore(e);
  });
  return { values, ptWrites, problems, current: () => gen, stop };
}

/**
 * Watches the guest's own stores into its installed p2m leaves: each must be one store of the guest
 * word (rule e). Filling a fresh leaf before it is installed is not such a store.
 */
export function monitorElementStores(g: PvGuest): { readonly stores: () => number; readonly problems: string[]; stop(): void } {
  const problems: string[] = [];
  let stores = 0;
  const stop = g.xen.events.subscribe((e: XenEvent) => {
    if (e.type !== 'store' || e.by !== 'guest' || e.domid !== g.domid) return;
    if (!g.list.isLeafPage(e.pfn)) return;
    stores++;
    if (e.length !== g.abi.wordSize || e.offset % g.abi.wordSize !== 0) {
      problems.push(`Fail: store into p2m leaf pfn 0x${e.pfn.toString(16)} at offset 0x${e.offset.toString(16)}, expected one aligned ${g.abi.wordSize}-byte store, got ${e.length} bytes`);
    }
  });
  return { stores: () => stores, problems, stop };
}
