/**
 * Building emulated guests for the guest-emu tests: a machine, a domain built the way the
 * personality needs (start_info flags), and the guest booted on it; a small peer guest for grants.
 */

import { X86_32, X86_64, type GuestAbi } from '../../../abi/index.js';
import { buildDomain } from '../../../xen-emu/builder.js';
import { Xen } from '../../../xen-emu/xen.js';
import { PvGuest, type GuestOptions } from '../../../guest-emu/guest.js';
import { parseGuestVariant, startInfoFlagsFor, PERSONALITIES, type Personality } from '../../../guest-emu/variants.js';

export const ABIS: readonly GuestAbi[] = [X86_32, X86_64];
export { PERSONALITIES };
export type { Personality };

export interface WorldOptions extends Omit<GuestOptions, 'variant'> {
  readonly abi: GuestAbi;
  /** A personality or fault name (default linear). */
  readonly variant?: string;
  readonly memoryPages?: number;
  readonly maxPages?: number;
  /** Machine frames (default 1 << 15). */
  readonly machinePages?: number;
  /** Boot the guest (default true); false leaves `boot()` to the test. */
  readonly boot?: boolean;
}

export interface World {
  readonly xen: Xen;
  readonly g: PvGuest;
}

export function makeGuest(o: WorldOptions, xen = new Xen({ maxPage: o.machinePages ?? 1 << 15 })): World {
  const variant = parseGuestVariant(o.variant ?? 'linear');
  const memoryPages = o.memoryPages ?? 4096;
  const built = buildDomain(xen, { abi: o.abi, memoryPages, maxPages: o.maxPages ?? memoryPages + 512, flags: startInfoFlagsFor(variant.personality) });
  const { abi: _abi, variant: _v, memoryPages: _m, maxPages: _mp, machinePages: _mach, boot, ...options } = o;
  const g = boot === false ? new PvGuest(built, xen, { ...options, variant }) : PvGuest.start(built, xen, { ...options, variant });
  return { xen, g };
}

/** A small x86_64 linear guest on the same machine, the other end of grants. */
export function makePeer(xen: Xen): PvGuest {
  return makeGuest({ abi: X86_64, memoryPages: 1400, maxPages: 1400 }, xen).g;
}

/** Runs a generator to its end; returns its result. */
export function finish<T>(gen: Generator<string, T, undefined>): T {
  for (;;) {
    const r = gen.next();
    if (r.done) return r.value;
  }
}

/** Runs a generator to its end; returns the labels of its steps. */
export function labels(gen: Generator<string, unknown, undefined>): string[] {
  const out: string[] = [];
  for (;;) {
    const r = gen.next();
    if (r.done) return out;
    out.push(r.value);
  }
}
