/**
 * Typed errors of the emulated guest. Guest-visible outcomes stay return values (a balloon-in that
 * Xen refuses just does not happen); these are for bad options, bad workload specs, and the places
 * where Linux would BUG(): a hypercall that must not fail did, which means the emulator or the
 * model is broken.
 */

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

export class GuestEmuError extends Error {
  override name = 'GuestEmuError';
}

/** Options the guest cannot run with: names the option and the numbers. */
export class GuestConfigError extends GuestEmuError {
  override name = 'GuestConfigError';
  constructor(
    message: string,
    /** The option at fault. */
    readonly option: string,
  ) {
    super(message);
  }
}

/** A hypercall or a store that Linux treats as infallible failed (Linux would BUG() here). */
export class GuestKernelBug extends GuestEmuError {
  override name = 'GuestKernelBug';
  constructor(
    /** What the guest was doing. */
    readonly what: string,
    /** The hypercall's result, or -EFAULT for a faulting store. */
    readonly rc: bigint,
    /** The pfn involved, when one is. */
    readonly pfn?: number,
  ) {
    super(`guest BUG: ${what}${pfn === undefined ? '' : ` (pfn ${hex(pfn)})`} returned ${rc}`);
  }
}

/** An operation asked of the guest that its state does not allow (e.g. ballooning out a page table). */
export class GuestStateError extends GuestEmuError {
  override name = 'GuestStateError';
}

/** A workload string that does not parse: one line, naming the valid keys. */
export class WorkloadSpecError extends GuestEmuError {
  override name = 'WorkloadSpecError';
}

export { hex };
