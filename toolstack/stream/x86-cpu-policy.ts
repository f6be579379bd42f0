/**
 * Mirrors the spec's "X86_CPUID_POLICY" and "X86_MSR_POLICY" records (v3 only, static data before
 * STATIC_DATA_END): arrays of `xen_cpuid_leaf_t` (24 bytes) and `xen_msr_entry_t` (16 bytes) as
 * `XEN_DOMCTL_get_cpu_policy` serialises them. libxc's saver leaves a record out when its array
 * would be empty; the receiver requires a non-zero multiple of the entry size.
 */

import { bodyError, writeError, type RecordCodec } from './codec.js';
import { defineLayout, sfield } from './layout.js';
import { REC_TYPE_X86_CPUID_POLICY, REC_TYPE_X86_MSR_POLICY } from './record-types.js';

export const xen_cpuid_leaf = defineLayout({
  name: 'xen_cpuid_leaf_t',
  spec: 'Records / X86_CPUID_POLICY',
  fields: [
    sfield('leaf', 4, 'CPUID leaf (eax input).'),
    sfield('subleaf', 4, 'CPUID subleaf (ecx input); XEN_CPUID_NO_SUBLEAF (~0) when the leaf has none.'),
    sfield('a', 4, 'eax output.'),
    sfield('b', 4, 'ebx output.'),
    sfield('c', 4, 'ecx output.'),
    sfield('d', 4, 'edx output.'),
  ],
});

export const xen_msr_entry = defineLayout({
  name: 'xen_msr_entry_t',
  spec: 'Records / X86_MSR_POLICY',
  fields: [
    sfield('idx', 4, 'MSR index.'),
    sfield('flags', 4, 'Reserved for future use, zero.'),
    sfield('val', 8, 'MSR value.'),
  ],
});

export type CpuidLeaf = { readonly leaf: number; readonly subleaf: number; readonly a: number; readonly b: number; readonly c: number; readonly d: number };
export type MsrEntry = { readonly idx: number; readonly flags: number; readonly val: bigint };

export interface X86CpuidPolicyRecord {
  readonly type: typeof REC_TYPE_X86_CPUID_POLICY;
  readonly leaves: readonly CpuidLeaf[];
}

export interface X86MsrPolicyRecord {
  readonly type: typeof REC_TYPE_X86_MSR_POLICY;
  readonly entries: readonly MsrEntry[];
}

export const x86CpuidPolicyCodec: RecordCodec<X86CpuidPolicyRecord> = {
  type: REC_TYPE_X86_CPUID_POLICY,
  spec: 'Records / X86_CPUID_POLICY',
  bodyLength: (rec) => xen_cpuid_leaf.size * rec.leaves.length,
  encodeBody(rec, into, at) {
    rec.leaves.forEach((l, i) => xen_cpuid_leaf.write(into, at + xen_cpuid_leaf.size * i, l));
  },
  decodeBody(body, ctx) {
    const size = xen_cpuid_leaf.size;
    if (body.length === 0 || body.length % size !== 0) bodyError(ctx, 'bad-length', 'body_length', -4, `a non-zero multiple of ${size} bytes, got ${body.length}`);
    const leaves: CpuidLeaf[] = [];
    for (let at = 0; at < body.length; at += size) leaves.push(xen_cpuid_leaf.read(body, at));
    return { type: REC_TYPE_X86_CPUID_POLICY, leaves };
  },
  validate(rec, ctx) {
    if (rec.leaves.length === 0) writeError(ctx, 'leaves', 'an empty policy; a saver leaves the record out instead');
    rec.leaves.forEach((l, i) => {
      const bad = xen_cpuid_leaf.misfit(l);
      if (bad !== undefined) writeError(ctx, `leaves[${i}].${bad}`, 'does not fit its field');
    });
  },
};

export const x86MsrPolicyCodec: RecordCodec<X86MsrPolicyRecord> = {
  type: REC_TYPE_X86_MSR_POLICY,
  spec: 'Records / X86_MSR_POLICY',
  bodyLength: (rec) => xen_msr_entry.size * rec.entries.length,
  encodeBody(rec, into, at) {
    rec.entries.forEach((e, i) => xen_msr_entry.write(into, at + xen_msr_entry.size * i, e));
  },
  decodeBody(body, ctx) {
    const size = xen_msr_entry.size;
    if (body.length === 0 || body.length % size !== 0) bodyError(ctx, 'bad-length', 'body_length', -4, `a non-zero multiple of ${size} bytes, got ${body.length}`);
    const entries: MsrEntry[] = [];
    for (let at = 0; at < body.length; at += size) entries.push(xen_msr_entry.read(body, at));
    return { type: REC_TYPE_X86_MSR_POLICY, entries };
  },
  validate(rec, ctx) {
    if (rec.entries.length === 0) writeError(ctx, 'entries', 'an empty policy; a saver leaves the record out instead');
    rec.entries.forEach((e, i) => {
      const bad = xen_msr_entry.misfit(e);
      if (bad !== undefined) writeError(ctx, `entries[${i}].${bad}`, 'does not fit its field');
    });
  },
};
