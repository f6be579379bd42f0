/**
 * Mirrors the spec's "Records" section (docs/specs/libxc-migration-stream.pandoc, revision 3): the
 * record type numbers, which are optional (bit 31), the alignment and the length limit both sides
 * enforce (libxc's `REC_ALIGN`, `REC_LENGTH_MAX`).
 */

import { hex } from './errors.js';

export const REC_TYPE_END = 0x00;
export const REC_TYPE_PAGE_DATA = 0x01;
export const REC_TYPE_X86_PV_INFO = 0x02;
export const REC_TYPE_X86_PV_P2M_FRAMES = 0x03;
export const REC_TYPE_X86_PV_VCPU_BASIC = 0x04;
export const REC_TYPE_X86_PV_VCPU_EXTENDED = 0x05;
export const REC_TYPE_X86_PV_VCPU_XSAVE = 0x06;
export const REC_TYPE_SHARED_INFO = 0x07;
export const REC_TYPE_X86_TSC_INFO = 0x08;
/** HVM only. */
export const REC_TYPE_HVM_CONTEXT = 0x09;
/** HVM only. */
export const REC_TYPE_HVM_PARAMS = 0x0a;
/** Deprecated: was only for the transition; no saver writes it. */
export const REC_TYPE_TOOLSTACK = 0x0b;
export const REC_TYPE_X86_PV_VCPU_MSRS = 0x0c;
export const REC_TYPE_VERIFY = 0x0d;
export const REC_TYPE_CHECKPOINT = 0x0e;
/** COLO back channel only (secondary → primary). */
export const REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST = 0x0f;
export const REC_TYPE_STATIC_DATA_END = 0x10;
export const REC_TYPE_X86_CPUID_POLICY = 0x11;
export const REC_TYPE_X86_MSR_POLICY = 0x12;

/** Bit 31 of a record type: a receiver that does not know the record may skip it. */
export const REC_TYPE_OPTIONAL = 0x80000000;

/** Every record ends on an 8-octet boundary; the body is padded with zeroes. */
export const REC_ALIGN = 8;
/** The longest record body either side accepts (libxc, read and write): 128 MiB. */
export const REC_LENGTH_MAX = 128 << 20;

/** The spec's names, as libxc's `rec_type_to_str` prints them. */
export const RECORD_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [REC_TYPE_END]: 'END',
  [REC_TYPE_PAGE_DATA]: 'PAGE_DATA',
  [REC_TYPE_X86_PV_INFO]: 'X86_PV_INFO',
  [REC_TYPE_X86_PV_P2M_FRAMES]: 'X86_PV_P2M_FRAMES',
  [REC_TYPE_X86_PV_VCPU_BASIC]: 'X86_PV_VCPU_BASIC',
  [REC_TYPE_X86_PV_VCPU_EXTENDED]: 'X86_PV_VCPU_EXTENDED',
  [REC_TYPE_X86_PV_VCPU_XSAVE]: 'X86_PV_VCPU_XSAVE',
  [REC_TYPE_SHARED_INFO]: 'SHARED_INFO',
  [REC_TYPE_X86_TSC_INFO]: 'X86_TSC_INFO',
  [REC_TYPE_HVM_CONTEXT]: 'HVM_CONTEXT',
  [REC_TYPE_HVM_PARAMS]: 'HVM_PARAMS',
  [REC_TYPE_TOOLSTACK]: 'TOOLSTACK',
  [REC_TYPE_X86_PV_VCPU_MSRS]: 'X86_PV_VCPU_MSRS',
  [REC_TYPE_VERIFY]: 'VERIFY',
  [REC_TYPE_CHECKPOINT]: 'CHECKPOINT',
  [REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST]: 'CHECKPOINT_DIRTY_PFN_LIST',
  [REC_TYPE_STATIC_DATA_END]: 'STATIC_DATA_END',
  [REC_TYPE_X86_CPUID_POLICY]: 'X86_CPUID_POLICY',
  [REC_TYPE_X86_MSR_POLICY]: 'X86_MSR_POLICY',
});

/** The spec's name of a record type, or `record 0x…` (with `(optional)` when bit 31 is set). */
export function recordName(type: number): string {
  return RECORD_NAMES[type] ?? `record ${hex(type)}${isOptionalRecord(type) ? ' (optional)' : ''}`;
}

export function isOptionalRecord(type: number): boolean {
  return type >= REC_TYPE_OPTIONAL;
}

/** Records that have no place in an x86 PV stream from the sender: libxc's PV restore does not handle them. */
export const NOT_IN_X86_PV_STREAM: ReadonlySet<number> = new Set([
  REC_TYPE_HVM_CONTEXT,
  REC_TYPE_HVM_PARAMS,
  REC_TYPE_TOOLSTACK,
  REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST,
]);

/** A body length rounded up to REC_ALIGN. */
export function paddedLength(length: number): number {
  return Math.ceil(length / REC_ALIGN) * REC_ALIGN;
}
