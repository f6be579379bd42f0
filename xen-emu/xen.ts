/**
 * The emulated hypervisor. A `Xen` owns its machine, its domains and its event bus; two instances
 * never share state. Guests reach it only through `hypercall` and through stores into their own
 * memory (`guestStore*`), which, like every store Xen makes on a guest's behalf, pass the one choke
 * point `storeBytes`/`storeWord`/`storeStamp`: it marks logdirty through the m2p *as it is at that
 * instant* and emits a store event (design decision 3).
 */

import { EFAULT, ENOSYS, ESRCH, PAGE_SIZE, type GuestAbi, DOMID_SELF } from '../abi/index.js';
import { Domain, DEFAULT_MAX_ORDERS, type MaxOrders } from './domain.js';
import { EventBus, type StoreBy } from './events.js';
import { INVALID_M2P, Machine } from './machine.js';
import { HYPERCALL_TABLE } from './hypercalls/index.js';
import { releaseGrantMappings } from './hypercalls/grant/map.js';
import { entryHighWord, entryLowWord, frameOfWords } from './pagetable.js';

export interface XenOptions {
  /** `max_page`: frames in the machine. */
  readonly maxPage: number;
  /** Extent order limits (Xen's `memop-max-order`). */
  readonly maxOrders?: Partial<MaxOrders>;
  /**
   * Frames an x86_32 (compat) domain's allocations are clamped below, as Xen clamps them with
   * `physaddr_bitsize` so that every mfn fits the compat m2p. Default as Xen
   * (xen/arch/x86/pv/domain.c): 2^25 frames when the machine has more frames than the compat m2p
   * has entries (0x2980000), else no clamp.
   */
  readonly compatMaxMfn?: number;
}

/** Who stores: the domain whose action it is and in what role. */
export interface Writer {
  readonly domid: number;
  readonly by: StoreBy;
}

/** Result of translating a guest virtual address. */
export interface Translation {
  readonly mfn: number;
  readonly offset: number;
}

/** Entries of the compat m2p: (MACH2PHYS_COMPAT_VIRT_END - __HYPERVISOR_COMPAT_VIRT_START) >> 2. */
const COMPAT_M2P_ENTRIES = (0xffe00000 - 0xf5800000) / 4;

const PRESENT = 1;
const RW = 2;
const ENTRIES_PER_TABLE = PAGE_SIZE / 8;
/** 2^47: canonical x86_64 VAs, read as signed, lie in [-2^47, 2^47). */
const CANONICAL_HALF = 2 ** 47;
/** Values up to here convert to a Number exactly. */
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Index of a VA's entry in its level-`level` table (4: L4 … 1: L1), from the VA's 32-bit halves.
 * A PAE L3 has 4 entries (VA bits 30–31).
 */
function entryIndexOf(level: number, vaHigh: number, vaLow: number, compat: boolean): number {
  switch (level) {
    case 4:
      return (vaHigh >>> 7) & 511;
    case 3:
      return compat ? vaLow >>> 30 : ((vaHigh & 0x7f) << 2) | (vaLow >>> 30);
    case 2:
      return (vaLow >>> 21) & 511;
    default:
      return (vaLow >>> 12) & 511;
  }
}

export class Xen {
  readonly machine: Machine;
  readonly events = new EventBus();
  readonly maxOrders: MaxOrders;
  readonly compatMaxMfn: number;
  private readonly domains = new Map<number, Domain>();
  private nextDomid = 0;

  constructor(options: XenOptions) {
    this.machine = new Machine({ maxPage: options.maxPage, events: this.events });
    this.maxOrders = { ...DEFAULT_MAX_ORDERS, ...options.maxOrders };
    this.compatMaxMfn = options.compatMaxMfn ?? (options.maxPage > COMPAT_M2P_ENTRIES ? 2 ** 25 : options.maxPage);
  }

  // ----------------------------------------------------------------------------------------------
  // Domains
  // ----------------------------------------------------------------------------------------------

  /**
   * Creates an empty domain with its shared_info frame (zeroed; the domain builder masks the
   * upcalls). A compat domain's shared_info lies below 4 GiB, so that its machine address fits
   * `start_info.shared_info` (Xen reallocates it with MEMF_bits(32)).
   */
  createDomain(config: { abi: GuestAbi; maxPages: number; privileged?: boolean; domid?: number; maxGrantFrames?: number }): Domain {
    const domid = config.domid ?? this.allocDomid();
    if (this.domains.has(domid)) throw new Error(`xen: domain ${domid} exists`);
    if (domid < 0 || domid >= DOMID_SELF) throw new Error(`xen: domid ${domid} is reserved`);
    const dom = new Domain({ ...config, domid });
    const mfn = this.allocXenHeapFrame(dom, dom.isCompat ? Math.min(this.allocLimit(dom), 2 ** 20) : this.allocLimit(dom));
    if (mfn === undefined) throw new Error('xen: no memory for shared_info');
    dom.sharedInfoMfn = mfn;
    this.domains.set(domid, dom);
    return dom;
  }

  private allocDomid(): number {
    while (this.domains.has(this.nextDomid)) this.nextDomid++;
    return this.nextDomid++;
  }

  /** A frame Xen owns and shares with `dom` (shared_info, grant frames): not in tot_pages. */
  allocXenHeapFrame(dom: Domain, limit = this.allocLimit(dom)): number | undefined {
    // Flagged as it is claimed, so that its ownership event already says it is a Xen heap page.
    return this.machine.allocFrame(dom.domid, limit, true);
  }

  /** Destroys a domain and frees every frame it owns. */
  destroyDomain(domid: number): void {
    const dom = this.domains.get(domid);
    if (!dom) throw new Error(`xen: no domain ${domid}`);
    // Mappings it holds of other domains' grants go first, so their GTF_reading/writing clear.
    releaseGrantMappings(this, dom);
    dom.dying = true;
    for (const mfn of this.framesOf(domid)) this.machine.freeFrame(mfn);
    dom.totPages = 0;
    this.domains.delete(domid);
  }

  /** Every mfn owned by `domid`, ascending (a full machine scan: for teardown and checks). */
  *framesOf(domid: number): Generator<number> {
    const snapshot: number[] = [];
    for (let mfn = 0; mfn < this.machine.maxPage; mfn++) {
      if (this.machine.ownerOf(mfn) === domid) snapshot.push(mfn);
    }
    yield* snapshot;
  }

  domain(domid: number): Domain | undefined {
    return this.domains.get(domid);
  }

  get domainList(): readonly Domain[] {
    return [...this.domains.values()];
  }

  /** Resolves a domid argument as Xen does: `DOMID_SELF` is the caller. */
  resolveDomid(caller: Domain, domid: number): Domain | undefined {
    return domid === DOMID_SELF ? caller : this.domains.get(domid);
  }

  /** Frames below which allocations for `dom` must lie. */
  allocLimit(dom: Domain): number {
    return dom.isCompat ? Math.min(this.compatMaxMfn, this.machine.maxPage) : this.machine.maxPage;
  }

  /** Largest extent order `dom` may use in memory ops. */
  maxOrderOf(dom: Domain): number {
    return dom.privileged ? this.maxOrders.ctl : this.maxOrders.domU;
  }

  // ----------------------------------------------------------------------------------------------
  // The choke point: every store into a domain's memory
  // ----------------------------------------------------------------------------------------------

  private markAndEmit(writer: Writer, mfn: number, offset: number, length: number, value?: bigint, stamp?: number): void {
    const owner = this.machine.ownerOf(mfn);
    const pfn = this.machine.m2pOf(mfn);
    if (owner !== undefined && pfn !== INVALID_M2P) this.domains.get(owner)?.logdirty.mark(pfn);
    if (this.events.active) {
      this.events.emit({
        type: 'store',
        domid: owner ?? -1,
        writer: writer.domid,
        by: writer.by,
        mfn,
        pfn,
        offset,
        length,
        ...(value === undefined ? {} : { value }),
        ...(stamp === undefined ? {} : { stamp }),
      });
    }
  }

  /** Stores bytes into one frame. */
  storeBytes(writer: Writer, mfn: number, offset: number, data: Uint8Array): void {
    if (offset < 0 || offset + data.length > PAGE_SIZE) throw new RangeError(`store of ${data.length} bytes at ${offset} crosses a page`);
    this.machine.bytes(mfn).set(data, offset);
    this.markAndEmit(writer, mfn, offset, data.length);
  }

  /** One store of 4 or 8 bytes (a single guest instruction: atomic at that width). */
  storeWord(writer: Writer, mfn: number, offset: number, value: bigint, width: 4 | 8): void {
    if (offset < 0 || offset + width > PAGE_SIZE) throw new RangeError(`store of ${width} bytes at ${offset} crosses a page`);
    const page = this.machine.bytes(mfn);
    if (value >= 0n && value <= MAX_SAFE_BIGINT) {
      // Every page-table entry without NX, every frame number: the halves from one exact Number,
      // with no BigInt arithmetic (the value is its own asUintN when it fits the width).
      const n = Number(value);
      const low = n >>> 0;
      storeUint32(page, offset, low);
      if (width === 8) storeUint32(page, offset + 4, (n - low) / 2 ** 32);
      this.markAndEmit(writer, mfn, offset, width, this.events.active ? (width === 8 || n <= 0xffffffff ? value : BigInt(low)) : undefined);
      return;
    }
    // Little-endian, one 32-bit half at a time (masking gives a negative value's two's complement).
    storeUint32(page, offset, Number(value & 0xffffffffn));
    if (width === 8) storeUint32(page, offset + 4, Number((value >> 32n) & 0xffffffffn));
    this.markAndEmit(writer, mfn, offset, width, this.events.active ? BigInt.asUintN(width * 8, value) : undefined);
  }

  /**
   * `storeWord` of an 8-byte value given as its 32-bit halves (unsigned): the same store, with a
   * BigInt made only for an observer of events. Page-table entry updates use it.
   */
  storeWord64Halves(writer: Writer, mfn: number, offset: number, low: number, high: number): void {
    if (offset < 0 || offset + 8 > PAGE_SIZE) throw new RangeError(`store of 8 bytes at ${offset} crosses a page`);
    const page = this.machine.bytes(mfn);
    storeUint32(page, offset, low);
    storeUint32(page, offset + 4, high);
    this.markAndEmit(writer, mfn, offset, 8, this.events.active ? (high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low)) : undefined);
  }

  /** Replaces a frame's whole contents with a content stamp (an ordinary data write). */
  storeStamp(writer: Writer, mfn: number, stamp: number): void {
    this.machine.setStamp(mfn, stamp);
    this.markAndEmit(writer, mfn, 0, PAGE_SIZE, undefined, stamp >>> 0);
  }

  /**
   * `storeStamp` for `count` frames (a restore writing a batch): the same choke point, one call.
   * While nobody observes events, the stamps go in one machine pass and the frames are looked up
   * for logdirty only when some domain has it enabled (marking never depends on a stamp, so the
   * order does not matter then); observed stores keep storeStamp's order, event by event. A frame
   * the bulk pass does not take (outside the machine, not an integer) and those after it go frame
   * by frame, as before, so errors and partial effects are unchanged.
   */
  storeStamps(writer: Writer, mfns: ArrayLike<number>, stamps: ArrayLike<number>, count: number): void {
    let done = 0;
    if (!this.events.active) {
      done = this.machine.setStamps(mfns, stamps, count);
      let logDirtyOn = false;
      for (const dom of this.domains.values()) logDirtyOn ||= dom.logdirty.enabled;
      if (logDirtyOn) for (let i = 0; i < done; i++) this.markAndEmit(writer, mfns[i]!, 0, PAGE_SIZE);
    }
    for (let i = done; i < count; i++) {
      const mfn = mfns[i]!;
      this.machine.setStamp(mfn, stamps[i]!);
      this.markAndEmit(writer, mfn, 0, PAGE_SIZE, undefined, stamps[i]! >>> 0);
    }
  }

  /** Changes an m2p entry (populate, MMU_MACHPHYS_UPDATE, exchange) and tells observers. */
  setM2p(mfn: number, pfn: number): void {
    if (this.events.active) {
      const oldPfn = this.machine.m2pOf(mfn);
      this.machine.setM2p(mfn, pfn);
      this.events.emit({ type: 'm2p', mfn, oldPfn, newPfn: pfn });
    } else {
      this.machine.setM2p(mfn, pfn);
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Guest virtual memory
  // ----------------------------------------------------------------------------------------------

  /**
   * Translates a guest VA through the domain's own page tables (rooted at its base pointer):
   * 4-level on x86_64, PAE 3-level on x86_32, MFNs in the entries. Undefined when not mapped, or
   * when `write` and some level lacks RW. With `path`, the entries read are appended to it as
   * `mfn * 512 + index`, top level first (also on failure: those read so far).
   *
   * The walk works on 32-bit halves of the VA and of each entry (numbers, not BigInt): it runs
   * for every guest load and store.
   */
  translate(dom: Domain, va: bigint, write = false, path?: number[]): Translation | undefined {
    if (dom.baseptrMfn < 0) return undefined;
    const compat = dom.isCompat;
    let vaHigh = 0;
    let vaLow: number;
    if (compat) {
      if (va > 0xffffffffn || va < 0n) return undefined;
      vaLow = Number(va);
    } else {
      if (va < 0n || va > 0xffffffffffffffffn) return undefined;
      // Canonical (bits 47–63 all equal) means within [-2^47, 2^47) read as signed 64 bits, where a
      // Number is exact: one BigInt operation splits the VA.
      const signed = Number(BigInt.asIntN(64, va));
      if (signed < -CANONICAL_HALF || signed >= CANONICAL_HALF) return undefined;
      vaLow = signed >>> 0;
      vaHigh = Math.floor(signed / 0x100000000) >>> 0;
    }
    let mfn = dom.baseptrMfn;
    const levels = compat ? 3 : 4;
    const machine = this.machine;
    const maxPage = machine.maxPage;
    for (let level = levels; level >= 1; level--) {
      const index = entryIndexOf(level, vaHigh, vaLow, compat);
      path?.push(mfn * ENTRIES_PER_TABLE + index);
      const page = machine.bytes(mfn);
      const low = entryLowWord(page, index);
      if ((low & PRESENT) === 0) return undefined;
      if (write && (low & RW) === 0 && !(compat && level === 3)) return undefined; // PAE L3 has no RW bit
      // A frame number from an entry is a non-negative integer: only the machine's end bounds it.
      const next = frameOfWords(low, entryHighWord(page, index));
      if (next >= maxPage || machine.ownerOf(next) === undefined) return undefined;
      mfn = next;
    }
    return { mfn, offset: vaLow & 0xfff };
  }

  /** Splits [va, va+length) at page boundaries and translates each piece; undefined on a fault. */
  private pieces(dom: Domain, va: bigint, length: number, write: boolean): { t: Translation; len: number }[] | undefined {
    const out: { t: Translation; len: number }[] = [];
    let at = va;
    let left = length;
    while (left > 0) {
      const t = this.translate(dom, at, write);
      if (!t) return undefined;
      const len = Math.min(left, PAGE_SIZE - t.offset);
      out.push({ t, len });
      at += BigInt(len);
      left -= len;
    }
    return out;
  }

  /** `copy_from_guest`: the bytes at [va, va+length), or undefined (-EFAULT) if any is unmapped. */
  copyFromGuest(dom: Domain, va: bigint, length: number): Uint8Array | undefined {
    if (length > 0 && Number(va & 0xfffn) + length <= PAGE_SIZE) {
      // Within one page (almost every argument struct): one translation, one copy.
      const t = this.translate(dom, va, false);
      return t && this.machine.bytes(t.mfn).slice(t.offset, t.offset + length);
    }
    const parts = this.pieces(dom, va, length, false);
    if (!parts) return undefined;
    const out = new Uint8Array(length);
    let at = 0;
    for (const { t, len } of parts) {
      out.set(this.machine.bytes(t.mfn).subarray(t.offset, t.offset + len), at);
      at += len;
    }
    return out;
  }

  /**
   * `copy_to_guest`: Xen writes `data` at `va` on `dom`'s behalf. Like Xen's copy, it stops at the
   * first page that faults; bytes before it stay written. Returns false on a fault (-EFAULT).
   */
  copyToGuest(dom: Domain, va: bigint, data: Uint8Array, by: StoreBy = 'xen'): boolean {
    if (data.length > 0 && Number(va & 0xfffn) + data.length <= PAGE_SIZE) {
      // Within one page (every one-extent list): the loop below with its single piece.
      const t = this.translate(dom, va, true);
      if (!t) return false;
      this.storeBytes({ domid: dom.domid, by }, t.mfn, t.offset, data);
      return true;
    }
    let at = 0;
    let addr = va;
    while (at < data.length) {
      const t = this.translate(dom, addr, true);
      if (!t) return false;
      const len = Math.min(data.length - at, PAGE_SIZE - t.offset);
      this.storeBytes({ domid: dom.domid, by }, t.mfn, t.offset, data.subarray(at, at + len));
      at += len;
      addr += BigInt(len);
    }
    return true;
  }

  /** A guest's own store of bytes at a VA: 0, or -EFAULT when any byte is not writable. */
  guestStore(dom: Domain, va: bigint, data: Uint8Array): number {
    const offset = Number(va & 0xfffn);
    if (data.length > 0 && offset + data.length <= PAGE_SIZE) {
      // Within one page: the translation that checks the store is the one it uses.
      const t = this.translate(dom, va, true);
      if (!t) return -EFAULT;
      this.storeBytes({ domid: dom.domid, by: 'guest' }, t.mfn, t.offset, data);
      return 0;
    }
    // A guest store that faults writes nothing: check every page first.
    if (!this.pieces(dom, va, data.length, true)) return -EFAULT;
    this.copyToGuest(dom, va, data, 'guest');
    return 0;
  }

  /** A guest's single store of one word (4 or 8 bytes, naturally aligned): 0 or -EFAULT. */
  guestStoreWord(dom: Domain, va: bigint, value: bigint, width: 4 | 8): number {
    if (va % BigInt(width) !== 0n) throw new RangeError(`unaligned ${width}-byte store at 0x${va.toString(16)}`);
    const t = this.translate(dom, va, true);
    if (!t) return -EFAULT;
    this.storeWord({ domid: dom.domid, by: 'guest' }, t.mfn, t.offset, value, width);
    return 0;
  }

  /** A guest's ordinary data write replacing a whole page (a content stamp): 0 or -EFAULT. */
  guestStorePage(dom: Domain, va: bigint, stamp: number): number {
    if ((va & 0xfffn) !== 0n) throw new RangeError(`page store at unaligned 0x${va.toString(16)}`);
    const t = this.translate(dom, va, true);
    if (!t) return -EFAULT;
    this.storeStamp({ domid: dom.domid, by: 'guest' }, t.mfn, stamp);
    return 0;
  }

  /** A guest's load: the bytes, or undefined on a fault. */
  guestLoad(dom: Domain, va: bigint, length: number): Uint8Array | undefined {
    return this.copyFromGuest(dom, va, length);
  }

  /** A guest's load of one naturally aligned word. */
  guestLoadWord(dom: Domain, va: bigint, width: 4 | 8): bigint | undefined {
    const t = this.translate(dom, va, false);
    if (!t || t.offset + width > PAGE_SIZE) return undefined;
    const page = this.machine.bytes(t.mfn);
    const low = entryLowWord(page, t.offset >> 3, t.offset & 7);
    if (width === 4) return BigInt(low);
    const high = entryHighWord(page, t.offset >> 3, t.offset & 7);
    return high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low);
  }

  // ----------------------------------------------------------------------------------------------
  // Hypercalls
  // ----------------------------------------------------------------------------------------------

  /**
   * Issues hypercall `nr` for `domid` with register arguments. Arguments and the result are guest
   * register values: a compat guest's are truncated to 32 bits, and its result is sign-extended
   * from 32 bits. Never throws for guest input: hostile arguments get Xen's answer.
   */
  hypercall(domid: number, nr: number, ...args: bigint[]): bigint {
    const dom = this.domains.get(domid);
    if (!dom || dom.dying) return BigInt(-ESRCH);
    const regs = hypercallRegisters(args, dom.isCompat);
    const handler = HYPERCALL_TABLE[nr];
    let result = handler ? handler({ xen: this, dom }, regs) : BigInt(-ENOSYS);
    if (dom.isCompat) result = BigInt.asIntN(32, result);
    if (this.events.active) this.events.emit({ type: 'hypercall', domid, nr, args: regs, result });
    return result;
  }
}

/** Stores a 32-bit value little-endian at `at` of `bytes`. */
function storeUint32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value;
  bytes[at + 1] = value >>> 8;
  bytes[at + 2] = value >>> 16;
  bytes[at + 3] = value >>> 24;
}

/**
 * Register values as the guest's registers hold them: truncated to 32 (compat) or 64 bits, padded
 * with zeros to 5. Values already in range are taken as they are (no BigInt arithmetic).
 */
function hypercallRegisters(args: readonly bigint[], compat: boolean): bigint[] {
  const top = compat ? 0xffffffffn : 0xffffffffffffffffn;
  const regs: bigint[] = [];
  for (const a of args) regs.push(a >= 0n && a <= top ? a : BigInt.asUintN(compat ? 32 : 64, a));
  while (regs.length < 5) regs.push(0n);
  return regs;
}

/** What a hypercall handler is given: the hypervisor and the calling domain. */
export interface HypercallContext {
  readonly xen: Xen;
  readonly dom: Domain;
}

export type HypercallHandler = (ctx: HypercallContext, args: readonly bigint[]) => bigint;
