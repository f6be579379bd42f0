/**
 * Mirrors the spec's "X86_PV_VCPU_BASIC, EXTENDED, XSAVE, MSRS" records (libxc's
 * `struct xc_sr_rec_x86_pv_vcpu_hdr`): a vcpu id, a reserved word, and a blob Xen gives the saver
 * through a pair of domctls. The blob sizes libxc's restore accepts depend on the record and, for
 * BASIC, on the guest width; `vcpuBlobProblem` states them and `restore-rules.ts` applies them.
 *
 * | record   | blob (domctl)                                   | libxc restore accepts                  |
 * |----------|-------------------------------------------------|----------------------------------------|
 * | BASIC    | `vcpu_guest_context` (get/setvcpucontext), mfns turned into pfns | exactly 2800 (x86_32) / 5168 (x86_64) |
 * | EXTENDED | `xen_domctl_ext_vcpucontext` (64 bytes in 4.17)  | at most 128                            |
 * | XSAVE    | `u64 xcr0, u64 xcr0_accum`, then the XSAVE area  | at least 16                            |
 * | MSRS     | `xen_domctl_vcpu_msr_t[]` (16 bytes each)        | a multiple of 16                       |
 *
 * An empty blob is tolerated and skipped (spec errata: Xen 4.6–4.8 sent some); libxc's saver leaves
 * EXTENDED, XSAVE and MSRS out when they would be empty.
 */

import { X86_32, X86_64, vcpu_guest_context, type GuestAbiName } from '../../abi/index.js';
import { bodyError, isU32, writeError, type RecordCodec } from './codec.js';
import { defineLayout, sfield } from './layout.js';
import {
  REC_TYPE_X86_PV_VCPU_BASIC,
  REC_TYPE_X86_PV_VCPU_EXTENDED,
  REC_TYPE_X86_PV_VCPU_MSRS,
  REC_TYPE_X86_PV_VCPU_XSAVE,
  recordName,
} from './record-types.js';

export const x86_pv_vcpu_hdr = defineLayout({
  name: 'X86_PV_VCPU_*',
  spec: 'Records / X86_PV_VCPU_BASIC, EXTENDED, XSAVE, MSRS',
  fields: [
    sfield('vcpu_id', 4, 'The vcpu the blob belongs to; below the domain\'s vcpu count.'),
    sfield('res1', 4, 'Reserved, zero.', true),
  ],
});

/**
 * `sizeof(vcpu_guest_context)` per guest ABI: 2800 (x86_32) / 5168 (x86_64), from the struct's
 * declaration in abi/vcpu.ts, which the layout oracle holds against `gcc -m32` / `-m64` compiling
 * Xen 4.17's headers.
 */
export const VCPU_GUEST_CONTEXT_SIZE: Readonly<Record<GuestAbiName, number>> = Object.freeze({
  x86_32: vcpu_guest_context.sizeOf(X86_32),
  x86_64: vcpu_guest_context.sizeOf(X86_64),
});
/** `sizeof(struct xen_domctl_ext_vcpucontext)`: what a 4.17 saver puts in EXTENDED. */
export const EXT_VCPUCONTEXT_SIZE = 64;
/** The largest EXTENDED blob libxc's restore accepts. */
export const EXT_VCPUCONTEXT_MAX = 128;
/** XSAVE blobs start with `u64 xcr0, u64 xcr0_accum`. */
export const XSAVE_HEADER_SIZE = 16;
/** `sizeof(xen_domctl_vcpu_msr_t)`: u32 index, u32 reserved, u64 value. */
export const VCPU_MSR_SIZE = 16;

export type VcpuRecordType =
  | typeof REC_TYPE_X86_PV_VCPU_BASIC
  | typeof REC_TYPE_X86_PV_VCPU_EXTENDED
  | typeof REC_TYPE_X86_PV_VCPU_XSAVE
  | typeof REC_TYPE_X86_PV_VCPU_MSRS;

export const VCPU_RECORD_TYPES: readonly VcpuRecordType[] = Object.freeze([
  REC_TYPE_X86_PV_VCPU_BASIC,
  REC_TYPE_X86_PV_VCPU_EXTENDED,
  REC_TYPE_X86_PV_VCPU_XSAVE,
  REC_TYPE_X86_PV_VCPU_MSRS,
]);

export interface X86PvVcpuRecord {
  readonly type: VcpuRecordType;
  readonly vcpu_id: number;
  /** The blob, as the domctl gives it (BASIC with mfns already turned into pfns). */
  readonly context: Uint8Array;
}

export function isVcpuRecordType(type: number): type is VcpuRecordType {
  return (VCPU_RECORD_TYPES as readonly number[]).includes(type);
}

/** Why libxc's restore would refuse a blob of `size` bytes for this record, or undefined. Empty is fine. */
export function vcpuBlobProblem(type: VcpuRecordType, size: number, guestWidth: 4 | 8): string | undefined {
  if (size === 0) return undefined;
  switch (type) {
    case REC_TYPE_X86_PV_VCPU_BASIC: {
      const want = VCPU_GUEST_CONTEXT_SIZE[guestWidth === 8 ? 'x86_64' : 'x86_32'];
      return size === want ? undefined : `a ${guestWidth * 8}-bit guest's vcpu_guest_context is ${want} bytes, got ${size}`;
    }
    case REC_TYPE_X86_PV_VCPU_EXTENDED:
      return size <= EXT_VCPUCONTEXT_MAX ? undefined : `at most ${EXT_VCPUCONTEXT_MAX} bytes, got ${size}`;
    case REC_TYPE_X86_PV_VCPU_XSAVE:
      return size >= XSAVE_HEADER_SIZE ? undefined : `at least ${XSAVE_HEADER_SIZE} bytes (xcr0, xcr0_accum), got ${size}`;
    case REC_TYPE_X86_PV_VCPU_MSRS:
      return size % VCPU_MSR_SIZE === 0 ? undefined : `a multiple of ${VCPU_MSR_SIZE} bytes, got ${size}`;
  }
}

function vcpuCodec(type: VcpuRecordType): RecordCodec<X86PvVcpuRecord> {
  return {
    type,
    spec: 'Records / X86_PV_VCPU_BASIC, EXTENDED, XSAVE, MSRS',
    bodyLength: (rec) => x86_pv_vcpu_hdr.size + rec.context.length,
    encodeBody(rec, into, at) {
      x86_pv_vcpu_hdr.write(into, at, { vcpu_id: rec.vcpu_id });
      into.set(rec.context, at + x86_pv_vcpu_hdr.size);
    },
    decodeBody(body, ctx) {
      if (body.length < x86_pv_vcpu_hdr.size) bodyError(ctx, 'bad-length', 'body_length', -4, `at least ${x86_pv_vcpu_hdr.size} bytes, got ${body.length}`);
      const h = x86_pv_vcpu_hdr.read(body, 0);
      if (h.res1 !== 0 && ctx.strictReserved) bodyError(ctx, 'reserved-nonzero', 'res1', 4, 'reserved field is not zero');
      return { type, vcpu_id: h.vcpu_id, context: body.subarray(x86_pv_vcpu_hdr.size) };
    },
    validate(rec, ctx) {
      if (!isU32(rec.vcpu_id)) writeError(ctx, 'vcpu_id', `${rec.vcpu_id} is not a u32`);
      if (rec.context.length === 0) writeError(ctx, 'context', `an empty ${recordName(type)} blob; a saver leaves the record out instead`);
    },
  };
}

export const x86PvVcpuCodecs: readonly RecordCodec<X86PvVcpuRecord>[] = Object.freeze(VCPU_RECORD_TYPES.map(vcpuCodec));
