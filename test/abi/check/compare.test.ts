/**
 * The classification on hand-built BTF (no compiler needed): guest handles, anonymous members,
 * bitfields, extra fields, signedness, duplicate and forward-declared names, names shared with KVM,
 * how the guest ABI is chosen — and the text and JSON reports of both commands.
 */

import { expect } from 'chai';
import { ABI_STRUCTS } from '../../../abi/index.js';
import {
  btfTypeName,
  checkBtf,
  checkKernel,
  compareStruct,
  ElfFormatError,
  headersReportJson,
  headersReportText,
  kernelReportJson,
  kernelReportText,
  loadKernelBtf,
  parseBtf,
  type HeadersCheckReport,
  type StructReport,
} from '../../../abi/check/index.js';
import { X86_64 } from '../../../abi/guest-abi.js';
import { aliased, defineStruct, field, uint64_t, xen_memory_reservation, vcpu_time_info } from '../../../abi/index.js';
import { BtfBuilder, buildElf, sampleBtf } from '../../support/btf-builder.js';

const SIGNED = 1;

function only(reports: readonly StructReport[], name: string): StructReport {
  const r = reports.find((s) => s.name === name);
  if (!r) return expect.fail(`no report for ${name}`);
  return r;
}

/** xen_memory_reservation as x86_64 lays it out; `edit` changes the members. */
function reservation(edit: (b: BtfBuilder, m: { ulong: number; uint: number; u16: number; handle: number }) => { name: string; type: number; bitOffset: number; bitfieldSize?: number }[]): Buffer {
  const b = new BtfBuilder();
  const ulong = b.int('long unsigned int', 8);
  const uint = b.int('unsigned int', 4);
  const u16 = b.int('short unsigned int', 2);
  const ptr = b.ptr(ulong);
  const handle = b.struct('', 8, [{ name: 'p', type: ptr, bitOffset: 0 }]);
  b.struct('xen_memory_reservation', 32, edit(b, { ulong, uint, u16, handle }));
  return b.build();
}

const XMR = (m: { ulong: number; uint: number; u16: number; handle: number }) => [
  { name: 'extent_start', type: m.handle, bitOffset: 0 },
  { name: 'nr_extents', type: m.ulong, bitOffset: 64 },
  { name: 'extent_order', type: m.uint, bitOffset: 128 },
  { name: 'mem_flags', type: m.uint, bitOffset: 160 },
  { name: 'domid', type: m.u16, bitOffset: 192 },
];

describe('classifying BTF structs', function () {
  const check = (bytes: Buffer) => checkBtf(loadKernelBtf(bytes), { arch: 'x86_64' }).structs;

  it('a guest handle declared as a struct of one pointer is the same kind as the kit\'s handle', function () {
    const r = only(check(reservation((_b, m) => XMR(m))), 'xen_memory_reservation');
    expect(r.status).to.equal('identical');
    expect(r.extra).to.deep.equal([]);
  });

  it('a member in the padding is listed as extra: compatible', function () {
    const r = only(check(reservation((_b, m) => [...XMR(m), { name: 'spare', type: m.u16, bitOffset: 208 }])), 'xen_memory_reservation');
    expect(r.status).to.equal('compatible');
    expect(r.extra).to.deep.equal([{ path: 'spare', offset: 26, size: 2, type: 'short unsigned int' }]);
  });

  it('members inside an anonymous union are found at the top level', function () {
    const bytes = reservation((b, m) => {
      const anon = b.struct('', 4, [
        { name: 'mem_flags', type: m.uint, bitOffset: 0 },
        { name: 'address_bits', type: m.uint, bitOffset: 0 },
      ], true);
      return [...XMR(m).filter((x) => x.name !== 'mem_flags'), { name: '', type: anon, bitOffset: 160 }];
    });
    const r = only(check(bytes), 'xen_memory_reservation');
    expect(r.problems).to.deep.equal([]);
    expect(r.extra.map((e) => e.path)).to.deep.equal(['address_bits']);
  });

  it('members the kit declares as aliases of a field in the same anonymous union are not extra', function () {
    const regs = defineStruct({
      name: 'alias_regs',
      header: 'test',
      doc: 'a register slot with aliases, like cpu_user_regs.rax',
      fields: [aliased(field('rax', uint64_t, 'rax'), ['eax', '_eax', 'al', 'ah']), field('rbx', uint64_t, 'rbx')],
    });
    const b = new BtfBuilder();
    const u64 = b.int('long unsigned int', 8);
    const u32 = b.int('unsigned int', 4);
    const u8 = b.int('unsigned char', 1);
    const bytes8 = b.struct('', 2, [
      { name: 'al', type: u8, bitOffset: 0 },
      { name: 'ah', type: u8, bitOffset: 8 },
    ]);
    const anon = b.struct('', 8, [
      { name: 'rax', type: u64, bitOffset: 0 },
      { name: 'eax', type: u64, bitOffset: 0 },
      { name: '_eax', type: u32, bitOffset: 0 },
      { name: '', type: bytes8, bitOffset: 0 },
      { name: 'spare', type: u32, bitOffset: 0 },
    ], true);
    b.struct('alias_regs', 16, [
      { name: '', type: anon, bitOffset: 0 },
      { name: 'rbx', type: u64, bitOffset: 64 },
    ]);
    const [r] = checkBtf(loadKernelBtf(b.build()), { arch: 'x86_64', structs: [regs] }).structs;
    expect(r!.problems).to.deep.equal([]);
    expect(r!.extra.map((e) => e.path)).to.deep.equal(['spare']);
    expect(r!.status).to.equal('compatible');
  });

  it('a bitfield where the kit has an integer is of another kind', function () {
    const bytes = reservation((_b, m) => XMR(m).map((x) => (x.name === 'mem_flags' ? { ...x, bitfieldSize: 32 } : x)));
    const r = only(check(bytes), 'xen_memory_reservation');
    expect(r.problems.map((p) => `${p.field} ${p.problem}`)).to.deep.equal(['mem_flags other kind']);
    expect(r.problems[0]!.message).to.contain('a bitfield');
  });

  it('an integer of the other signedness is retyped: compatible', function () {
    const bytes = reservation((b, m) => {
      const sint = b.int('int', 4, SIGNED);
      return XMR(m).map((x) => (x.name === 'extent_order' ? { ...x, type: sint } : x));
    });
    const r = only(check(bytes), 'xen_memory_reservation');
    expect(r.status).to.equal('compatible');
    expect(r.retyped).to.deep.equal([{ field: 'extent_order', expected: 'unsigned int (unsigned)', got: 'int (signed)' }]);
  });

  it('a struct found only as a forward declaration is not present, with a note', function () {
    const b = new BtfBuilder();
    b.fwd('shared_info');
    const r = only(check(b.build()), 'shared_info');
    expect(r.status).to.equal('not present');
    expect(r.notes).to.deep.equal(['shared_info is only declared (BTF FWD), not defined']);
  });

  it('of two structs with the same name the closer is reported; a typedef name finds an anonymous struct', function () {
    const b = new BtfBuilder();
    const u32 = b.int('unsigned int', 4);
    b.struct('gnttab_set_version', 8, [{ name: 'version', type: u32, bitOffset: 0 }]);
    b.struct('gnttab_set_version', 4, [{ name: 'version', type: u32, bitOffset: 0 }]);
    const anon = b.struct('', 4, [{ name: 'version', type: u32, bitOffset: 0 }]);
    b.typedef('gnttab_get_version_t', anon);
    const reports = check(b.build());
    const set = only(reports, 'gnttab_set_version');
    expect(set.status).to.equal('identical');
    expect(set.notes).to.deep.equal(['2 types carry the name; the closest match is reported']);
    const get = only(reports, 'gnttab_get_version');
    expect(get.foundAs).to.equal('gnttab_get_version (struct)');
    expect(get.status).to.equal('incompatible');
  });

  it('pvclock_vcpu_time_info counts as vcpu_time_info only next to Xen structs', function () {
    const b = new BtfBuilder();
    const u32 = b.int('unsigned int', 4);
    const u64 = b.int('long long unsigned int', 8);
    const s8 = b.int('signed char', 1, SIGNED);
    const u8 = b.int('unsigned char', 1);
    const int = b.int('int', 4, SIGNED);
    const pad = b.array(u8, int, 2);
    b.struct('pvclock_vcpu_time_info', 32, [
      { name: 'version', type: u32, bitOffset: 0 },
      { name: 'pad0', type: u32, bitOffset: 32 },
      { name: 'tsc_timestamp', type: u64, bitOffset: 64 },
      { name: 'system_time', type: u64, bitOffset: 128 },
      { name: 'tsc_to_system_mul', type: u32, bitOffset: 192 },
      { name: 'tsc_shift', type: s8, bitOffset: 224 },
      { name: 'flags', type: u8, bitOffset: 232 },
      { name: 'pad', type: pad, bitOffset: 240 },
    ]);
    const kvmOnly = b.build();
    expect(only(check(kvmOnly), 'vcpu_time_info').status).to.equal('not present');
    b.struct('xen_memory_domain', 2, [{ name: 'domid', type: b.int('short unsigned int', 2), bitOffset: 0 }]);
    const r = only(check(b.build()), 'vcpu_time_info');
    expect(r.status).to.equal('compatible');
    expect(r.renames[0]).to.deep.equal({ from: 'struct vcpu_time_info', to: 'struct pvclock_vcpu_time_info', guest: 'Linux' });
  });

  it('the guest ABI: the ELF class; refused for a non-x86 ELF unless --arch; the size of long; else x86_64', function () {
    const elf = buildElf([{ name: '.BTF', data: sampleBtf().builder.build() }], 32, 3);
    expect(checkKernel(elf).abi).to.equal('x86_32');
    const arm = buildElf([{ name: '.BTF', data: sampleBtf().builder.build() }], 64, 183);
    expect(() => checkKernel(arm)).to.throw(ElfFormatError, /ELF machine AArch64 is not x86 .*pass --arch/);
    expect(checkKernel(arm, { arch: 'x86_64' }).abiFrom).to.equal('option');
    const b32 = new BtfBuilder();
    b32.int('long int', 4, SIGNED);
    expect(checkKernel(b32.build())).to.include({ abi: 'x86_32', abiFrom: 'size of long in the BTF' });
    expect(checkKernel(new BtfBuilder().build())).to.include({ abi: 'x86_64', abiFrom: 'default' });
  });

  it('a struct that fans out through anonymous members is cut off, quickly, with a note', function () {
    const b = new BtfBuilder();
    const u32 = b.int('unsigned int', 4);
    const leaf = b.struct('', 4, Array.from({ length: 2000 }, () => ({ name: '', type: u32, bitOffset: 0 })));
    const mid = b.struct('', 4, Array.from({ length: 2000 }, () => ({ name: '', type: leaf, bitOffset: 0 })), true);
    b.struct('gnttab_set_version', 4, Array.from({ length: 2000 }, () => ({ name: '', type: mid, bitOffset: 0 })), true);
    const started = Date.now();
    const r = only(check(b.build()), 'gnttab_set_version');
    expect(Date.now() - started).to.be.below(2000);
    expect(r.notes.join(' ')).to.match(/only the first \d+ members .* were compared/);
  });

  it('many members through one long typedef chain and deeply nested arrays are sized in linear time', function () {
    const b = new BtfBuilder();
    const u16 = b.int('short unsigned int', 2);
    const int = b.int('int', 4, SIGNED);
    let t = u16;
    for (let i = 0; i < 30_000; i++) t = b.typedef(`d${i}`, t);
    let arr = u16;
    for (let i = 0; i < 30_000; i++) arr = b.array(arr, int, 1);
    b.struct('xen_memory_domain', 2, [
      ...Array.from({ length: 20_000 }, (_, i) => ({ name: i === 0 ? 'domid' : `t${i}`, type: t, bitOffset: 0 })),
      ...Array.from({ length: 20_000 }, (_, i) => ({ name: `a${i}`, type: arr, bitOffset: 0 })),
    ], true);
    const started = Date.now();
    const r = only(check(b.build()), 'xen_memory_domain');
    expect(Date.now() - started).to.be.below(3000);
    expect(r.problems).to.deep.equal([]);
  });

  it('spells BTF types the way C does', function () {
    const { builder, ids } = sampleBtf();
    const btf = parseBtf(builder.build());
    expect(btfTypeName(btf, ids.con!)).to.equal('const volatile unsigned int');
    expect(btfTypeName(btf, ids.res!)).to.equal('struct arch_shared_info *');
    expect(btfTypeName(btf, ids.arr!)).to.equal('unsigned int[4]');
    expect(btfTypeName(btf, ids.en!)).to.equal('enum e');
    expect(btfTypeName(btf, ids.fwd!)).to.equal('struct later');
    expect(btfTypeName(btf, ids.ttag!)).to.equal('struct arch_shared_info *');
    expect(btfTypeName(btf, ids.proto!)).to.equal('function');
    expect(btfTypeName(btf, ids.uni!)).to.equal('union u');
    expect(btfTypeName(btf, 0)).to.equal('void');
  });

  it('a struct the guest lacks is not present, with the notes given', function () {
    const r = compareStruct(vcpu_time_info, X86_64, undefined, { notes: ['why'] });
    expect(r).to.deep.include({ status: 'not present', notes: ['why'], size: { expected: 32 } });
  });
});

describe('check reports', function () {
  it('text: a header, one line per struct with its details indented, the summary and the verdict', function () {
    const report = checkKernel(reservation((_b, m) => XMR(m).map((x) => (x.name === 'domid' ? { ...x, bitOffset: 208 } : x))), { file: 'k.btf' });
    const text = kernelReportText(report);
    const lines = text.split('\n');
    expect(lines[0]).to.equal('xenabi check-kernel k.btf');
    expect(lines[1]).to.match(/^ {2}BTF: raw BTF at 0x0, \d+ bytes, \d+ types$/);
    expect(lines[2]).to.equal('  guest ABI: x86_64 (from the size of long in the BTF)');
    expect(text).to.contain('  incompatible  struct xen_memory_reservation\n                  Fail: xen_memory_reservation.domid moved (x86_64), expected 2 bytes at 0x18, got 2 bytes at 0x1a\n');
    expect(text).to.contain(`  x86_64: 0 identical, 0 compatible, 1 incompatible, ${ABI_STRUCTS.length - 1} not present\nresult: incompatible structs found (exit 1)\n`);
    const json = JSON.parse(kernelReportJson(report)) as { command: string; structs: StructReport[]; exitCode: number };
    expect(json.command).to.equal('check-kernel');
    expect(json.exitCode).to.equal(1);
    expect(json.structs.map((s) => s.name)).to.deep.equal(ABI_STRUCTS.map((s) => s.name));
  });

  it('text for check-headers lists each ABI, renames, retypes, extras and notes', function () {
    const s: StructReport = {
      ...compareStruct(xen_memory_reservation, X86_64, undefined),
      status: 'compatible',
      foundAs: 'struct xen_memory_reservation',
      renames: [{ from: 'mem_flags', to: 'address_bits', guest: 'Linux' }],
      retyped: [{ field: '(struct)', expected: 'aligned to 8', got: 'aligned to 4' }],
      extra: [{ path: 'spare', offset: 26, size: 2, type: '' }],
      notes: ['a note'],
    };
    const report: HeadersCheckReport = {
      compiler: 'cc (test)',
      headers: ['xen/xen.h'],
      includeDirs: ['/inc'],
      defines: ['A=1'],
      abis: [{ abi: 'x86_64', structs: [s], summary: { identical: 0, compatible: 1, incompatible: 0, 'not present': 0 } }],
      exitCode: 0,
    };
    const text = headersReportText(report);
    expect(text).to.equal(
      [
        'xenabi check-headers',
        '  compiler: cc (test)',
        '  headers: xen/xen.h from /inc',
        '  defines: A=1',
        '',
        'x86_64:',
        '  compatible    struct xen_memory_reservation',
        '                  renamed: mem_flags → address_bits (Linux)',
        '                  retyped: (struct): aligned to 8 → aligned to 4',
        '                  extra: spare (2 bytes at 0x1a)',
        '                  note: a note',
        '',
        '  x86_64: 0 identical, 1 compatible, 0 incompatible, 0 not present',
        'result: no struct is incompatible (exit 0)',
        '',
      ].join('\n'),
    );
    expect(JSON.parse(headersReportJson(report))).to.deep.include({ command: 'check-headers', exitCode: 0 });
  });
});
