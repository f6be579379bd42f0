/**
 * Constant tables as data, so the oracle can hold every value against Xen's headers.
 *
 * Each constant is exported under Xen's own name from the file that mirrors its header; a group
 * lists them by shorthand (`constants('grant_table.h', { GNTST_okay, ... })`) so names are written
 * once and values never twice.
 */

import type { GuestAbiName } from './guest-abi.js';

export type ConstantValue = number | bigint;

export interface ConstantGroup {
  /** Xen public header that defines these (relative to `include/public/`), or null when the
   * values come from elsewhere (Linux, the x86 architecture) and no Xen header can check them. */
  readonly header: string | null;
  /** Where the values come from when `header` is null. */
  readonly source?: string;
  readonly values: Readonly<Record<string, ConstantValue>>;
  /** C expressions for names the header spells differently (e.g. errno `EPERM` is `XEN_EPERM`). */
  readonly cExpr: Readonly<Record<string, string>>;
  /** Defined for this guest ABI only (the header gives the same name another value, or none, on
   * the other); the oracle checks the group only when probing that ABI. */
  readonly abi?: GuestAbiName;
  /** Macros the header needs defined to declare these (e.g. `__XEN_TOOLS__` for tools-only
   * values); the oracle's probe defines them. */
  readonly defines?: readonly string[];
}

export interface ConstantGroupOptions {
  readonly abi?: GuestAbiName;
  readonly defines?: readonly string[];
}

export function constants(
  header: string,
  values: Record<string, ConstantValue>,
  cExpr: Record<string, string> = {},
  options: ConstantGroupOptions = {},
): ConstantGroup {
  return Object.freeze({
    header,
    values: Object.freeze({ ...values }),
    cExpr: Object.freeze({ ...cExpr }),
    ...(options.abi === undefined ? {} : { abi: options.abi }),
    ...(options.defines === undefined ? {} : { defines: Object.freeze([...options.defines]) }),
  });
}

/** Every macro some group needs defined, for one probe that checks them all. */
export function definesOf(groups: readonly ConstantGroup[]): string[] {
  return [...new Set(groups.flatMap((g) => g.defines ?? []))].sort();
}

/** Whether the oracle compiles this group for `abi`. */
export function checkedOn(group: ConstantGroup, abi: GuestAbiName): boolean {
  return group.header !== null && (group.abi === undefined || group.abi === abi);
}

/** Constants that no Xen public header defines; `source` says where they come from. */
export function externalConstants(source: string, values: Record<string, ConstantValue>): ConstantGroup {
  return Object.freeze({ header: null, source, values: Object.freeze({ ...values }), cExpr: Object.freeze({}) });
}

/** The C expression that evaluates a constant in a probe. */
export function constantCExpr(group: ConstantGroup, name: string): string {
  return group.cExpr[name] ?? name;
}
