/**
 * The ABI layer's public API: byte-exact x86_32 and x86_64 PV layouts and constants.
 * `ABI_STRUCTS` and `ABI_CONSTANTS` list everything the oracle checks and the docs render.
 */

import type { ConstantGroup } from './constants.js';
import type { StructInfo } from './struct.js';
import * as sharedInfo from './shared_info.js';

export * from './guest-abi.js';
export * from './ctype.js';
export * from './constants.js';
export * from './errors.js';
export * from './struct.js';
export * from './shared_info.js';

/** Every struct the kit defines, in documentation order. */
export const ABI_STRUCTS: readonly StructInfo[] = Object.freeze([
  sharedInfo.vcpu_time_info,
  sharedInfo.arch_vcpu_info,
  sharedInfo.vcpu_info,
  sharedInfo.arch_shared_info,
  sharedInfo.shared_info,
]);

/** Every constant table, with the header that defines it. */
export const ABI_CONSTANTS: readonly ConstantGroup[] = Object.freeze([
  sharedInfo.SHARED_INFO_CONSTANTS,
  sharedInfo.NMI_CONSTANTS,
]);

export function findStruct(name: string): StructInfo | undefined {
  return ABI_STRUCTS.find((s) => s.name === name);
}
