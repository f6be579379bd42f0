/**
 * Which guest to emulate, by name: three personalities of a correct Linux-like guest, and faulty
 * variants that each break exactly one rule of the p2m protocol (reference §2.5 rules a–e, §1.7,
 * §2.6), for the conformance suite to catch.
 *
 * Personalities:
 * - `legacy-tree`: Linux before the linear list (Xen < 4.6): the 3-level tree only, `p2m_cr3` 0,
 *   no generation counter; the tree is built whatever start_info's flags say.
 * - `linear`: a modern domU (libxenguest sets SIF_VIRT_P2M_4TOOLS): the linear list only, fll ~0.
 * - `tree+linear`: a modern dom0-style guest (no SIF_VIRT_P2M_4TOOLS): the list and the tree.
 * A modern guest decides like Linux, from SIF_VIRT_P2M_4TOOLS; the two modern names only say which
 * flag the domain must be built with (`startInfoFlagsFor`), and booting checks it.
 */

import { SIF_VIRT_P2M_4TOOLS } from '../abi/index.js';
import { GuestConfigError } from './errors.js';

export const PERSONALITIES = ['legacy-tree', 'linear', 'tree+linear'] as const;
export type Personality = (typeof PERSONALITIES)[number];

export const FAULT_NAMES = [
  'skip-bump',
  'bump-once',
  'bump-after',
  'non-monotonic-generation',
  'torn-element-write',
  'forgotten-m2p',
  'early-p2m-cr3',
  'short-max-pfn',
  'stale-mid-page',
] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

export interface FaultInfo {
  readonly name: FaultName;
  /** The rule broken, in one sentence. */
  readonly rule: string;
  /** What the faulty guest does instead. */
  readonly does: string;
  /** The personality it is built on by default (the fault needs that structure to show). */
  readonly personality: Personality;
}

export const FAULTS: readonly FaultInfo[] = Object.freeze([
  {
    name: 'skip-bump',
    rule: 'p2m_generation is odd across every page-table write that changes which frame backs a p2m page, and each such change adds 2',
    does: 'replaces PMDs and PTEs of the linear list without touching p2m_generation',
    personality: 'linear',
  },
  {
    name: 'bump-once',
    rule: 'p2m_generation is even whenever no mapping change is in progress',
    does: 'bumps p2m_generation before the page-table write but not after it, leaving it odd',
    personality: 'linear',
  },
  {
    name: 'bump-after',
    rule: 'p2m_generation is odd while a page-table write that remaps the linear list is in progress',
    does: 'makes the page-table write first and bumps p2m_generation twice only afterwards',
    personality: 'linear',
  },
  {
    name: 'non-monotonic-generation',
    rule: 'p2m_generation never decreases, except the reset to 0 on (re)publication',
    does: 'opens the bracket with ++ and closes it with --, so a remap leaves the counter where it was',
    personality: 'linear',
  },
  {
    name: 'torn-element-write',
    rule: 'one element of the linear list is written with a single store of the guest word',
    does: 'writes each p2m element as two half-width stores, low half first',
    personality: 'linear',
  },
  {
    name: 'forgotten-m2p',
    rule: 'p2m and m2p agree for every owned frame whenever the guest is quiescent',
    does: 'balloons in with increase_reservation and stores the p2m entry without the MMU_MACHPHYS_UPDATE',
    personality: 'linear',
  },
  {
    name: 'early-p2m-cr3',
    rule: 'p2m_cr3 is published only once every page of the list is mapped with 4 KiB entries',
    does: 'publishes max_pfn, p2m_vaddr and p2m_cr3 before building the linear list mapping',
    personality: 'linear',
  },
  {
    name: 'short-max-pfn',
    rule: 'max_pfn covers every populated pfn',
    does: 'grows the p2m beyond max_pfn without raising max_pfn',
    personality: 'linear',
  },
  {
    name: 'stale-mid-page',
    rule: 'the 3-level tree and the linear list name the same leaf frames',
    does: 'installs a new leaf in the linear list but does not record its mfn in the tree\'s mid page',
    personality: 'tree+linear',
  },
] satisfies FaultInfo[]);

/** One guest to emulate: a personality, optionally with one fault. */
export interface GuestVariant {
  /** The name it was selected by (a personality or a fault name). */
  readonly name: string;
  readonly personality: Personality;
  readonly fault?: FaultName;
}

export function isPersonality(name: string): name is Personality {
  return (PERSONALITIES as readonly string[]).includes(name);
}

export function isFaultName(name: string): name is FaultName {
  return (FAULT_NAMES as readonly string[]).includes(name);
}

export function faultInfo(name: FaultName): FaultInfo {
  return FAULTS.find((f) => f.name === name)!;
}

/** Every selectable guest name: the personalities, then the faults. */
export const GUEST_VARIANT_NAMES: readonly string[] = Object.freeze([...PERSONALITIES, ...FAULT_NAMES]);

/** A personality or fault name, as `--guest` takes it; anything else is a GuestConfigError naming the valid ones. */
export function parseGuestVariant(name: string): GuestVariant {
  if (isPersonality(name)) return { name, personality: name };
  if (isFaultName(name)) return { name, personality: faultInfo(name).personality, fault: name };
  throw new GuestConfigError(`unknown guest "${name}"; valid: ${GUEST_VARIANT_NAMES.join(', ')}`, 'guest');
}

/**
 * The start_info flags a domain must be built with for a personality: SIF_VIRT_P2M_4TOOLS for a
 * modern domU (`linear`), none for `tree+linear` (as Xen's dom0 builder) and `legacy-tree`.
 */
export function startInfoFlagsFor(personality: Personality): number {
  return personality === 'linear' ? SIF_VIRT_P2M_4TOOLS : 0;
}
