/**
 * What an emulated Xen lets observers see: every store into guest memory (with the pfn logdirty
 * marked, as the m2p said at that instant), every m2p change and every hypercall. Conformance rules
 * and traces subscribe here. Each `Xen` owns its bus; nothing is global.
 */

/** Who performed a store: the guest itself, or Xen (or the builder) on the domain's behalf. */
export type StoreBy = 'guest' | 'xen' | 'builder' | 'toolstack';

export interface StoreEvent {
  readonly type: 'store';
  /** The domain whose frame was written (the frame's owner). */
  readonly domid: number;
  /** The domain whose action caused it (the caller of the hypercall, or the guest); -1 for a toolstack outside every emulated domain. */
  readonly writer: number;
  readonly by: StoreBy;
  readonly mfn: number;
  /** The m2p entry of `mfn` at the instant of the store: the pfn logdirty marked, or INVALID_M2P. */
  readonly pfn: number;
  readonly offset: number;
  readonly length: number;
  /** The stored value for a single word store (4 or 8 bytes), as the guest sees it. */
  readonly value?: bigint;
  /** Set when the whole frame was replaced by a content stamp. */
  readonly stamp?: number;
}

export interface M2pEvent {
  readonly type: 'm2p';
  readonly mfn: number;
  readonly oldPfn: number;
  readonly newPfn: number;
}

export interface HypercallEvent {
  readonly type: 'hypercall';
  readonly domid: number;
  readonly nr: number;
  readonly args: readonly bigint[];
  readonly result: bigint;
}

/**
 * A frame was assigned to a domain (`owned`: allocation, grant transfer) or taken from it (freed,
 * transferred away, the domain destroyed). Emitted by the machine only while somebody listens, so
 * that traces can follow which frames a domain owns without scanning the machine.
 */
export interface OwnershipEvent {
  readonly type: 'ownership';
  readonly domid: number;
  readonly mfn: number;
  readonly owned: boolean;
  /** Set for a Xen heap page shared with the domain (shared_info, grant frames): not in tot_pages. */
  readonly xenHeap?: boolean;
}

export type XenEvent = StoreEvent | M2pEvent | HypercallEvent | OwnershipEvent;
export type XenListener = (event: XenEvent) => void;

export class EventBus {
  private listeners: XenListener[] = [];

  /** Subscribes; returns the function that unsubscribes. */
  subscribe(listener: XenListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** Whether anybody listens: producers skip building events nobody reads (hot paths). */
  get active(): boolean {
    return this.listeners.length > 0;
  }

  emit(event: XenEvent): void {
    for (const l of this.listeners) l(event);
  }
}
