/**
 * Every record the kit reads or writes, as one union keyed by the record type, and the table from
 * type to codec (each record kind registers its codec from its own file). Mirrors the spec's
 * "Records" section as a whole.
 */

import { PAGE_SIZE } from '../../abi/index.js';
import { checkpointDirtyPfnListCodec, type CheckpointDirtyPfnListRecord } from './checkpoint-dirty-pfn-list.js';
import type { RecordCodec } from './codec.js';
import { hex } from './errors.js';
import { pageDataCodec, pageTypeName, pagesWithData, type PageDataRecord } from './page-data.js';
import {
  REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST,
  REC_TYPE_PAGE_DATA,
  REC_TYPE_SHARED_INFO,
  REC_TYPE_X86_CPUID_POLICY,
  REC_TYPE_X86_MSR_POLICY,
  REC_TYPE_X86_PV_INFO,
  REC_TYPE_X86_PV_P2M_FRAMES,
  REC_TYPE_X86_PV_VCPU_BASIC,
  REC_TYPE_X86_PV_VCPU_EXTENDED,
  REC_TYPE_X86_PV_VCPU_MSRS,
  REC_TYPE_X86_PV_VCPU_XSAVE,
  REC_TYPE_X86_TSC_INFO,
  recordName,
} from './record-types.js';
import { sharedInfoCodec, type SharedInfoRecord } from './shared-info.js';
import { checkpointCodec, endCodec, staticDataEndCodec, verifyCodec, type SignalRecord } from './signal-records.js';
import { x86CpuidPolicyCodec, x86MsrPolicyCodec, type X86CpuidPolicyRecord, type X86MsrPolicyRecord } from './x86-cpu-policy.js';
import { x86PvInfoCodec, type X86PvInfoRecord } from './x86-pv-info.js';
import { x86PvP2mFramesCodec, type X86PvP2mFramesRecord } from './x86-pv-p2m-frames.js';
import { isVcpuRecordType, x86PvVcpuCodecs, type X86PvVcpuRecord } from './x86-pv-vcpu.js';
import { x86TscInfoCodec, type X86TscInfoRecord } from './x86-tsc-info.js';

/** A record with bit 31 set that the kit does not know: a receiver may skip it (the reader reports it, sinks never see it). */
export interface SkippedRecord {
  readonly type: number;
  readonly body: Uint8Array;
}

export type StreamRecord =
  | SignalRecord
  | PageDataRecord
  | X86PvInfoRecord
  | X86PvP2mFramesRecord
  | X86PvVcpuRecord
  | SharedInfoRecord
  | X86TscInfoRecord
  | CheckpointDirtyPfnListRecord
  | X86CpuidPolicyRecord
  | X86MsrPolicyRecord;

const CODECS: ReadonlyMap<number, RecordCodec<StreamRecord>> = new Map(
  (
    [
      endCodec,
      pageDataCodec,
      x86PvInfoCodec,
      x86PvP2mFramesCodec,
      ...x86PvVcpuCodecs,
      sharedInfoCodec,
      x86TscInfoCodec,
      verifyCodec,
      checkpointCodec,
      checkpointDirtyPfnListCodec,
      staticDataEndCodec,
      x86CpuidPolicyCodec,
      x86MsrPolicyCodec,
    ] as RecordCodec<StreamRecord>[]
  ).map((c) => [c.type, c]),
);

/** The codec of a record type the kit implements, or undefined (HVM records, TOOLSTACK, unknown). */
export function codecOf(type: number): RecordCodec<StreamRecord> | undefined {
  return CODECS.get(type);
}

/** `body_length` of a record. */
export function bodyLengthOf(rec: StreamRecord): number {
  return codecOf(rec.type)!.bodyLength(rec);
}

/** One line describing a record, for `xenabi verify-stream` and test messages. */
export function describeRecord(rec: StreamRecord): string {
  const name = recordName(rec.type);
  switch (rec.type) {
    case REC_TYPE_PAGE_DATA: {
      const counts = new Map<string, number>();
      for (const e of rec.entries) counts.set(pageTypeName(e.type), (counts.get(pageTypeName(e.type)) ?? 0) + 1);
      const types = [...counts].map(([t, n]) => `${n} ${t}`).join(', ');
      let lo = Infinity;
      let hi = -Infinity;
      for (const e of rec.entries) {
        lo = Math.min(lo, e.pfn);
        hi = Math.max(hi, e.pfn);
      }
      return `${name}: ${rec.entries.length} pfns (${types}), ${pagesWithData(rec.entries)} pages of data, pfns ${hex(lo)}..${hex(hi)}`;
    }
    case REC_TYPE_X86_PV_INFO:
      return `${name}: ${rec.guest_width * 8}-bit guest, ${rec.pt_levels} levels of page tables`;
    case REC_TYPE_X86_PV_P2M_FRAMES:
      return `${name}: pfns ${hex(rec.p2m_start_pfn)}..${hex(rec.p2m_end_pfn)} in ${rec.p2m_pfns.length} frames`;
    case REC_TYPE_X86_PV_VCPU_BASIC:
    case REC_TYPE_X86_PV_VCPU_EXTENDED:
    case REC_TYPE_X86_PV_VCPU_XSAVE:
    case REC_TYPE_X86_PV_VCPU_MSRS:
      return `${name}: vcpu${rec.vcpu_id}, ${rec.context.length} bytes`;
    case REC_TYPE_SHARED_INFO:
      return `${name}: ${PAGE_SIZE} bytes`;
    case REC_TYPE_X86_TSC_INFO:
      return `${name}: mode ${rec.mode}, ${rec.khz} kHz, ${rec.nsec} ns, incarnation ${rec.incarnation}`;
    case REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST:
      return `${name}: ${rec.pfns.length} pfns`;
    case REC_TYPE_X86_CPUID_POLICY:
      return `${name}: ${rec.leaves.length} leaves`;
    case REC_TYPE_X86_MSR_POLICY:
      return `${name}: ${rec.entries.length} MSRs`;
    default:
      return name;
  }
}

export { isVcpuRecordType };
