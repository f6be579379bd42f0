/**
 * The names real guests give the ABI structs and fields, where they differ from Xen's public headers.
 * A check finds a struct by Xen's name first, then by these; a field found under another name is
 * reported as a rename (same bytes, different name), never as missing.
 *
 * Linux keeps its own copies of Xen's headers (include/xen/interface/): it calls `vcpu_time_info`
 * `pvclock_vcpu_time_info` (shared with KVM's pvclock) and its `pad1` `pad`, folds shared_info's
 * wallclock fields into one `struct pvclock_wall_clock wc`, and names
 * `xen_memory_reservation.mem_flags` `address_bits` (its name before Xen 4.2).
 */

export interface GuestStructName {
  readonly name: string;
  /** The guest (or guests) that use this name. */
  readonly guest: string;
  /**
   * Set when the name is not Xen's alone (e.g. KVM also defines `pvclock_vcpu_time_info`): then
   * it counts only in a kernel that has Xen structs under Xen-specific names too.
   */
  readonly sharedWith?: string;
}

export interface GuestFieldName {
  /** Dotted path from the start of the struct, e.g. `wc.version`. */
  readonly path: string;
  readonly guest: string;
}

export interface GuestNames {
  /** Xen's struct name, as in ABI_STRUCTS. */
  readonly struct: string;
  readonly names?: readonly GuestStructName[];
  /** Other paths of a field, by the kit's path relative to this struct. */
  readonly fields?: Readonly<Record<string, readonly GuestFieldName[]>>;
}

const TABLE: GuestNames[] = [
  {
    struct: 'vcpu_time_info',
    names: [{ name: 'pvclock_vcpu_time_info', guest: 'Linux', sharedWith: 'KVM' }],
    fields: { pad1: [{ path: 'pad', guest: 'Linux' }] },
  },
  {
    struct: 'shared_info',
    fields: {
      wc_version: [{ path: 'wc.version', guest: 'Linux' }],
      wc_sec: [{ path: 'wc.sec', guest: 'Linux' }],
      wc_nsec: [{ path: 'wc.nsec', guest: 'Linux' }],
    },
  },
  {
    struct: 'xen_memory_reservation',
    fields: { mem_flags: [{ path: 'address_bits', guest: 'Linux' }] },
  },
];

export const GUEST_NAMES: readonly GuestNames[] = Object.freeze(TABLE);

export function guestNamesOf(struct: string, table: readonly GuestNames[] = GUEST_NAMES): GuestNames | undefined {
  return table.find((g) => g.struct === struct);
}
