/**
 * abi/check/btf.ts: every BTF kind parsed, typedefs and qualifiers resolved, unknown kinds skipped by
 * the size a kind layout declares, and malformed BTF (truncated, corrupt, ids out of range, cycles,
 * absurd counts) rejected with one line and the file offset. The running kernel's BTF is parsed whole.
 */

import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { BTF_KIND, BtfFormatError, parseBtf, type Btf } from '../../../abi/check/index.js';
import { BtfBuilder, sampleBtf } from '../../support/btf-builder.js';

const VMLINUX = '/sys/kernel/btf/vmlinux';

/** The error parseBtf throws for `bytes`; fails the test when it does not throw one. */
function btfError(bytes: Uint8Array, fileOffset?: number): BtfFormatError {
  try {
    parseBtf(bytes, fileOffset === undefined ? {} : { fileOffset });
  } catch (e) {
    expect(e).to.be.instanceOf(BtfFormatError);
    expect((e as Error).message).not.to.contain('\n');
    return e as BtfFormatError;
  }
  return expect.fail('parseBtf accepted malformed BTF');
}

describe('BTF reader', function () {
  describe('every kind', function () {
    const { builder, ids } = sampleBtf();
    const bytes = builder.build();
    let btf: Btf;
    before(function () {
      btf = parseBtf(bytes);
    });

    it('reads the header and counts every type', function () {
      expect(btf.header).to.include({ littleEndian: true, version: 1, hdrLen: 24 });
      expect(btf.typeCount).to.equal(builder.typeCount);
      const kinds = new Set(Array.from({ length: btf.typeCount }, (_, i) => btf.kind(i + 1)));
      expect([...kinds].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 19 }, (_, i) => i + 1));
    });

    it('decodes INT, PTR, ARRAY, STRUCT and UNION', function () {
      expect(btf.type(ids.uint!)).to.deep.equal({ id: ids.uint, kind: 'INT', name: 'unsigned int', size: 4, encoding: 0, bitOffset: 0, bits: 32 });
      expect(btf.type(ids.int!)).to.include({ kind: 'INT', encoding: 1 });
      expect(btf.type(ids.ptr!)).to.deep.equal({ id: ids.ptr, kind: 'PTR', name: '', type: ids.ash });
      expect(btf.type(ids.arr!)).to.deep.equal({ id: ids.arr, kind: 'ARRAY', name: '', type: ids.uint, indexType: ids.int, nelems: 4 });
      const ash = btf.type(ids.ash!);
      expect(ash).to.include({ kind: 'STRUCT', name: 'arch_shared_info', size: 48 });
      if (ash.kind !== 'STRUCT') return expect.fail(`type ${ids.ash} is ${ash.kind}`);
      expect(ash.members.map((m) => [m.name, m.bitOffset])).to.deep.equal([
        ['max_pfn', 0], ['pfn_to_mfn_frame_list_list', 64], ['nmi_reason', 128], ['p2m_cr3', 192], ['p2m_vaddr', 256], ['p2m_generation', 320],
      ]);
      expect(btf.type(ids.uni!)).to.include({ kind: 'UNION', size: 8 });
    });

    it('decodes bitfield members from a kind_flag struct', function () {
      expect(btf.members(ids.bits!)).to.deep.equal([
        { name: 'lo', type: ids.uint, bitOffset: 0, bitfieldSize: 3 },
        { name: 'hi', type: ids.uint, bitOffset: 3, bitfieldSize: 29 },
      ]);
    });

    it('decodes ENUM, ENUM64, FWD, FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG and TYPE_TAG', function () {
      expect(btf.type(ids.en!)).to.deep.include({ kind: 'ENUM', values: [{ name: 'E0', value: 0 }, { name: 'E1', value: 1 }] });
      expect(btf.type(ids.e64!)).to.deep.include({ kind: 'ENUM64', values: [{ name: 'BIG', value: 1n << 40n }] });
      expect(btf.type(ids.fwd!)).to.deep.include({ kind: 'FWD', name: 'later', union: false });
      expect(btf.type(ids.func!)).to.deep.include({ kind: 'FUNC', name: 'f', type: ids.proto, linkage: 1 });
      expect(btf.type(ids.proto!)).to.deep.include({ kind: 'FUNC_PROTO', returnType: ids.int, params: [{ name: 'x', type: ids.int }, { name: 'p', type: ids.res }] });
      expect(btf.type(ids.vr!)).to.deep.include({ kind: 'VAR', name: 'v', type: ids.con, linkage: 1 });
      expect(btf.type(ids.sec!)).to.deep.include({ kind: 'DATASEC', name: '.data', vars: [{ type: ids.vr, offset: 0, size: 4 }] });
      expect(btf.type(ids.flt!)).to.deep.include({ kind: 'FLOAT', name: 'double', size: 8 });
      expect(btf.type(ids.tag!)).to.deep.include({ kind: 'DECL_TAG', name: 'tag', type: ids.ash, componentIdx: 1 });
      expect(btf.type(ids.ttag!)).to.deep.include({ kind: 'TYPE_TAG', name: 'user', type: ids.ptr });
    });

    it('resolves typedefs and qualifiers, and sizes arrays and pointers', function () {
      expect(btf.resolve(ids.xenPfn!)).to.equal(ids.ulong);
      expect(btf.resolve(ids.con!)).to.equal(ids.uint);
      expect(btf.resolve(ids.ttag!)).to.equal(ids.ptr);
      expect(btf.byteSize(ids.arr!, 8)).to.equal(16);
      expect(btf.byteSize(ids.res!, 4)).to.equal(4);
      expect(btf.byteSize(ids.proto!, 8)).to.equal(undefined);
    });

    it('finds types by name and kind', function () {
      const found = btf.findNamed(['arch_shared_info', 'xen_pfn_t', 'nope'], [BTF_KIND.STRUCT, BTF_KIND.TYPEDEF]);
      expect([...found.entries()]).to.deep.equal([['xen_pfn_t', [ids.xenPfn]], ['arch_shared_info', [ids.ash]]]);
    });

    it('reports file offsets of records relative to where the BTF sits in the file', function () {
      const shifted = parseBtf(bytes, { fileOffset: 0x1000 });
      expect(shifted.fileOffsetOf(1)).to.equal(0x1000 + 24);
    });
  });

  describe('unknown and future kinds', function () {
    function withKind25(layout: boolean): Buffer {
      const b = new BtfBuilder();
      const u = b.int('unsigned int', 4);
      b.raw(25, 'future', 2, 7, [0xaaaa, 1, 2, 3, 4]); // declared: 4 bytes, then 8 per element
      b.struct('after', 4, [{ name: 'x', type: u, bitOffset: 0 }]);
      const entries: [number, number, number][] = Array.from({ length: 26 }, () => [0, 0, 0]);
      entries[25] = [0, 4, 8];
      return layout ? b.build({ kindLayout: entries }) : b.build();
    }

    it('skips a kind it does not know by the size the kind layout declares', function () {
      const btf = parseBtf(withKind25(true));
      expect(btf.typeCount).to.equal(3);
      expect(btf.type(2)).to.deep.include({ kind: 'UNKNOWN', kindNumber: 25, vlen: 2, name: 'future' });
      expect(btf.type(3)).to.deep.include({ kind: 'STRUCT', name: 'after' });
      expect([...btf.unknownKinds]).to.deep.equal([[25, 1]]);
    });

    it('refuses it, with the offset, when no kind layout declares its size', function () {
      const e = btfError(withKind25(false));
      expect(e.message).to.match(/^type id 2 has kind 25, unknown to this reader .* no kind layout/);
      expect(e.offset).to.equal(24 + 16 + 4); // the info word of the second record
    });
  });

  describe('malformed BTF: one line with the file offset', function () {
    const good = (): Buffer => sampleBtf().builder.build();

    it('too short for a header', function () {
      expect(btfError(Buffer.from([0x9f, 0xeb, 1])).offset).to.equal(0);
    });

    it('bad magic', function () {
      const b = good();
      b[0] = 0;
      const e = btfError(b, 0x40);
      expect(e.message).to.match(/^bad BTF magic .* \(at file offset 0x40\)$/);
      expect(e.offset).to.equal(0x40);
    });

    it('unsupported version', function () {
      const b = good();
      b[2] = 2;
      expect(btfError(b).message).to.match(/unsupported BTF version 2/);
    });

    it('header length past the end, and a section past the end', function () {
      const a = good();
      a.writeUInt32LE(a.length + 1, 4);
      expect(btfError(a).offset).to.equal(4);
      const b = good();
      b.writeUInt32LE(b.readUInt32LE(20) + 100, 20);
      expect(btfError(b).message).to.match(/string section .* runs past the end/);
    });

    it('truncated file: every prefix is rejected, none hangs', function () {
      const b = good();
      for (let n = 0; n < b.length; n += 7) btfError(b.subarray(0, n));
    });

    it('a record cut by the end of the type section', function () {
      const b = good();
      b.writeUInt32LE(b.readUInt32LE(12) - 4, 12);
      const e = btfError(b);
      expect(e.message).to.match(/^truncated BTF type record: type id \d+ \((\w+)/);
    });

    it('an absurd member count is rejected before anything is allocated for it', function () {
      const bld = new BtfBuilder();
      const u = bld.int('unsigned int', 4);
      bld.raw(BTF_KIND.STRUCT, 's', 0xffff, 4, [bld.str('x'), u, 0]);
      const started = Date.now();
      const e = btfError(bld.build());
      expect(e.message).to.match(/type id 2 \(STRUCT, vlen 65535\) needs 786432 bytes/);
      expect(e.offset).to.equal(24 + 16);
      expect(Date.now() - started).to.be.below(1000);
    });

    it('a type id out of range', function () {
      const bld = new BtfBuilder();
      bld.int('int', 4, 1);
      bld.struct('s', 4, [{ name: 'x', type: 999, bitOffset: 0 }]);
      const e = btfError(bld.build());
      expect(e.message).to.match(/type id 2 \(STRUCT\): member 0 type id 999 is out of range \(the BTF has 2 types\)/);
      expect(e.offset).to.equal(24 + 16 + 12 + 4);
    });

    it('a name offset past the string section', function () {
      const b = good();
      b.writeUInt32LE(0xffffff, 24);
      expect(btfError(b).message).to.match(/type id 1: name offset 16777215 is past the string section/);
    });

    it('a string section without its final NUL', function () {
      const b = good();
      b[b.length - 1] = 0x41;
      expect(btfError(b).message).to.match(/does not end with a NUL/);
    });

    it('kind 0', function () {
      const bld = new BtfBuilder();
      bld.raw(0, '', 0, 0);
      expect(btfError(bld.build()).message).to.match(/kind 0 \(UNKN\)/);
    });

    it('a typedef cycle and a struct that contains itself', function () {
      const a = new BtfBuilder();
      a.typedef('a', 2);
      a.const(1);
      expect(btfError(a.build()).message).to.match(/^reference cycle: type id \d \((TYPEDEF|CONST)\) refers to type id \d, which refers back to it/);
      const s = new BtfBuilder();
      const arr = s.array(2, 0, 2);
      s.struct('loop', 8, [{ name: 'self', type: arr, bitOffset: 0 }]);
      expect(btfError(s.build()).message).to.match(/^reference cycle/);
    });

    it('a pointer back to its own struct is not a cycle', function () {
      const b = new BtfBuilder();
      b.struct('node', 8, [{ name: 'next', type: 2, bitOffset: 0 }]);
      b.ptr(1);
      expect(parseBtf(b.build()).typeCount).to.equal(2);
    });

    it('a long typedef chain resolves without deep recursion', function () {
      const b = new BtfBuilder();
      let prev = b.int('int', 4, 1);
      for (let i = 0; i < 50_000; i++) prev = b.typedef(`t${i}`, prev);
      const btf = parseBtf(b.build());
      expect(btf.resolve(prev)).to.equal(1);
    });
  });

  describe('the running kernel\'s BTF (/sys/kernel/btf/vmlinux)', function () {
    this.timeout(30_000);
    before(function () {
      if (!existsSync(VMLINUX)) {
        if (process.env.CI === 'true') throw new Error(`${VMLINUX} is missing in CI: the kernel must be built with CONFIG_DEBUG_INFO_BTF`);
        console.log(`      skipped: ${VMLINUX} is absent (kernel without CONFIG_DEBUG_INFO_BTF)`);
        this.skip();
      }
    });

    it('parses every type and decodes each record', function () {
      const btf = parseBtf(readFileSync(VMLINUX));
      expect(btf.typeCount).to.be.greaterThan(10_000);
      const seen = new Set<string>();
      for (let id = 1; id <= btf.typeCount; id++) {
        const t = btf.type(id);
        seen.add(t.kind);
        if (t.kind === 'STRUCT' || t.kind === 'UNION') expect(t.members.length).to.equal(btf.vlen(id));
      }
      expect([...seen]).to.include.members(['INT', 'PTR', 'ARRAY', 'STRUCT', 'UNION', 'ENUM', 'TYPEDEF', 'FUNC', 'FUNC_PROTO']);
      const task = btf.findNamed(['task_struct'], [BTF_KIND.STRUCT]).get('task_struct');
      expect(task, 'struct task_struct').to.have.length.greaterThan(0);
    });
  });
});
