/**
 * One emulated domain: its identity and guest ABI, page accounting, shared_info frame, grant
 * table, logdirty bitmap, vCPU base pointers and paused state. Frames themselves live in the
 * machine; this holds what Xen's `struct domain` holds about them.
 */

import type { GuestAbi } from '../abi/index.js';
import { GrantTable } from './grant-table.js';
import { LogDirty } from './logdirty.js';

/** Largest extent order per caller, as Xen's `memop-max-order` defaults (x86). */
export interface MaxOrders {
  /** Ordinary domU: `PAGETABLE_ORDER`. */
  readonly domU: number;
  /** The control domain: 2 × PAGETABLE_ORDER. */
  readonly ctl: number;
  /** The hardware domain. */
  readonly hwdom: number;
}

export const DEFAULT_MAX_ORDERS: MaxOrders = Object.freeze({ domU: 9, ctl: 18, hwdom: 12 });

export interface DomainConfig {
  readonly domid: number;
  readonly abi: GuestAbi;
  /** `max_pages`: the most frames the domain may own (its reservation limit). */
  readonly maxPages: number;
  /** A control domain (dom0-like): may name other domains in memory ops and toolstack calls. */
  readonly privileged?: boolean;
  /** Grant table frames the domain may grow to (`gnttab_max_frames`, default 64). */
  readonly maxGrantFrames?: number;
}

export class Domain {
  readonly domid: number;
  readonly abi: GuestAbi;
  readonly privileged: boolean;
  maxPages: number;
  /** Frames owned and counted (`domain_tot_pages`); Xen heap pages shared with it are not counted. */
  totPages = 0;
  /** The machine frame of shared_info (a Xen heap page shared with the guest). */
  sharedInfoMfn = -1;
  /** Top-level page table of vCPU 0 (`MMUEXT_NEW_BASEPTR`); -1 before the builder sets it. */
  baseptrMfn = -1;
  /**
   * vCPU 0's start_info mfn: what a PV guest hands Xen in rdx/edx when it suspends, and what the
   * saver reads from the vCPU context (`user_regs.rdx`); -1 when none (set by the builder and restore).
   */
  startInfoMfn = -1;
  /** x86_64 user-mode top-level table (`MMUEXT_NEW_USER_BASEPTR`), 0 when none. */
  userBaseptrMfn = 0;
  paused = false;
  /** Set once destroyed; a destroyed domain answers nothing. */
  dying = false;
  readonly logdirty = new LogDirty();
  readonly grantTable: GrantTable;

  constructor(config: DomainConfig) {
    this.domid = config.domid;
    this.abi = config.abi;
    this.maxPages = config.maxPages;
    this.privileged = config.privileged ?? false;
    this.grantTable = new GrantTable(config.maxGrantFrames ?? 64);
  }

  /** Is this the x86_32 (compat) ABI? Its hypercall arguments are 32-bit registers. */
  get isCompat(): boolean {
    return this.abi.wordSize === 4;
  }
}
