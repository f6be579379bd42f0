/**
 * The struct engine behind every abi/ declaration: layout rules per ABI, typed-struct definitions,
 * views over guest memory and their range checks. Real offsets are the oracle's business
 * (oracle.test.ts); here the rules are checked as relations, on small structs made for the test.
 */

import { expect } from 'chai';
import {
  AbiRangeError,
  AbiViewError,
  X86_32,
  X86_64,
  array,
  defineStruct,
  field,
  guestAbi,
  inlineStruct,
  inlineUnion,
  isGuestAbiName,
  perAbi,
  shared_info,
  struct,
  uint8_t,
  uint16_t,
  uint32_t,
  uint64_t,
  int8_t,
  int16_t,
  int32_t,
  unsigned_long,
  wordMask,
  type GuestAbi,
} from '../../abi/index.js';

const inner = defineStruct({
  name: 'inner',
  header: 'test',
  doc: 'a nested struct',
  fields: [field('a', uint16_t, 'a'), field('b', uint8_t, 'b')],
});

// A struct with a hole before `wide`, tail padding after `tail`, a word, a per-ABI field, an
// ABI-only field, a nested struct, an array of structs and an anonymous union of structs.
const sample = defineStruct({
  name: 'sample',
  header: 'test',
  doc: 'a struct made for the engine tests',
  fields: [
    field('small', uint8_t, 'one byte'),
    field('wide', uint64_t, 'aligned to 8 on x86_64, 4 on x86_32'),
    field('word', unsigned_long, 'one guest word'),
    field('pad', perAbi(array(uint32_t, 3), uint32_t), 'differs per ABI'),
    field('only64', uint32_t, 'x86_64 only', 'x86_64'),
    field('nested', struct(inner), 'a named struct'),
    field('many', array(struct(inner), 2), 'an array of structs'),
    field('bytes', array(uint8_t, 3), 'a byte array'),
    field('words', array(unsigned_long, 2), 'a word array'),
    field(
      'u',
      inlineUnion([
        field('x', inlineStruct([field('lo', uint16_t, 'lo'), field('hi', uint32_t, 'hi')]), 'x'),
        field('y', uint64_t, 'y'),
      ]),
      'an anonymous union',
    ),
    field('s8', int8_t, 'signed byte'),
    field('s16', int16_t, 'signed short'),
    field('s32', int32_t, 'signed int'),
    field('tail', uint8_t, 'followed by tail padding'),
  ],
});

const abis: GuestAbi[] = [X86_32, X86_64];

describe('abi struct engine', function () {
  for (const abi of abis) {
    describe(abi.name, function () {
      const layout = sample.layout(abi);
      const at = (path: string) => layout.all.find((f) => f.path === path)!;

      it('aligns every field to its type and the struct to its widest member', function () {
        for (const f of layout.all) expect(f.offset % f.align, f.path).to.equal(0);
        expect(at('wide').offset).to.equal(abi.u64Align);
        expect(layout.align).to.equal(Math.max(...layout.fields.map((f) => f.align)));
        expect(layout.size % layout.align).to.equal(0);
      });

      it('sizes words, per-ABI types and ABI-only fields by the ABI', function () {
        expect(at('word').size).to.equal(abi.wordSize);
        expect(at('pad').size).to.equal(abi.name === 'x86_32' ? 12 : 4);
        expect(layout.all.some((f) => f.path === 'only64')).to.equal(abi.name === 'x86_64');
      });

      it('shows the hole after `small` and the tail padding as rows that tile the struct', function () {
        const hole = layout.rows.find((r) => r.kind === 'hole');
        expect(hole).to.deep.include({ offset: 1, size: at('wide').offset - 1 });
        const last = layout.rows[layout.rows.length - 1]!;
        expect(last.kind).to.equal('padding');
        // Top-level rows cover [0, size) exactly once, except union members, which overlap.
        let covered = 0;
        for (const r of layout.rows) {
          if (r.kind === 'field' ? r.field.path.startsWith('u.') : r.within.startsWith('u.')) continue;
          covered += r.kind === 'field' ? r.field.size : r.size;
        }
        expect(covered + at('u').size).to.equal(layout.size);
      });

      it('flattens anonymous members with dotted names; leaves exclude the aggregates', function () {
        expect(layout.leaves.map((f) => f.path)).to.include.members(['u.x.lo', 'u.x.hi', 'u.y']);
        expect(layout.leaves.map((f) => f.path)).not.to.include('u');
        expect(at('u.x.lo').offset).to.equal(at('u').offset);
        expect(at('u.y').offset).to.equal(at('u').offset);
        expect(at('u.x.hi').offset).to.be.greaterThan(at('u.x.lo').offset);
      });

      it('builds a typed-struct definition whose baseSize is sizeof', function () {
        expect(sample.typedStruct(abi).baseSize).to.equal(layout.size);
        expect(sample.typedStruct(abi).baseSize).to.equal(sample.sizeOf(abi));
      });

      it('offsetOf descends into named structs and rejects unknown paths', function () {
        expect(sample.offsetOf(abi, 'nested.b')).to.equal(at('nested').offset + inner.offsetOf(abi, 'b'));
        expect(() => sample.offsetOf(abi, 'nested.zz')).to.throw(AbiViewError, /sample has no field nested.zz/);
        expect(() => sample.offsetOf(abi, 'nope')).to.throw(AbiViewError);
      });

      it('offsetOf addresses array elements by index, into struct elements too, and bounds the index', function () {
        expect(sample.offsetOf(abi, 'words[0]')).to.equal(at('words').offset);
        expect(sample.offsetOf(abi, 'words[1]')).to.equal(at('words').offset + abi.wordSize);
        expect(sample.offsetOf(abi, 'bytes[2]')).to.equal(at('bytes').offset + 2);
        const stride = inner.sizeOf(abi);
        expect(sample.offsetOf(abi, 'many[1]')).to.equal(at('many').offset + stride);
        expect(sample.offsetOf(abi, 'many[1].b')).to.equal(at('many').offset + stride + inner.offsetOf(abi, 'b'));
        expect(() => sample.offsetOf(abi, 'words[2]')).to.throw(AbiViewError, /sample has no field words\[2\]/);
        for (const bad of ['words[-1]', 'words[01]', 'words[x]', 'words[1].a', 'many[0].zz', 'many[0]b', 'small[0]']) {
          expect(() => sample.offsetOf(abi, bad), bad).to.throw(AbiViewError);
        }
      });

      it('a view writes through to the memory it was made over, at the computed offsets', function () {
        const memory = Buffer.alloc(layout.size + 16);
        const v = sample.view(abi, memory, 16);
        v.wide = 0x0102030405060708n;
        v.word = wordMask(abi);
        v.nested.b = 0xab;
        v.many[1]!.a = 0x1234;
        v.u.y = 0x1111222233334444n;
        v.s8 = -2;
        v.s16 = -3;
        v.s32 = -4;
        expect(memory.readBigUInt64LE(16 + at('wide').offset)).to.equal(0x0102030405060708n);
        const wordAt = 16 + at('word').offset;
        expect(abi.wordSize === 8 ? memory.readBigUInt64LE(wordAt) : BigInt(memory.readUInt32LE(wordAt))).to.equal(wordMask(abi));
        expect(memory[16 + sample.offsetOf(abi, 'nested.b')]).to.equal(0xab);
        expect(memory.readUInt16LE(16 + at('many').offset + inner.sizeOf(abi))).to.equal(0x1234);
        expect(v.u.x.lo).to.equal(0x4444);
        expect(memory.readInt8(16 + at('s8').offset)).to.equal(-2);
        expect([v.s8, v.s16, v.s32]).to.deep.equal([-2, -3, -4]);
        expect(memory.subarray(0, 16).every((b) => b === 0)).to.equal(true);
      });

      it('byte arrays are Buffers over the memory; word arrays are bigint views', function () {
        const { bytes, view } = sample.alloc(abi);
        view.bytes = Buffer.from([1, 2, 3]);
        expect([...bytes.subarray(at('bytes').offset, at('bytes').offset + 3)]).to.deep.equal([1, 2, 3]);
        view.bytes[0] = 9;
        expect(bytes[at('bytes').offset]).to.equal(9);
        expect(() => (view.bytes = Buffer.from([1]))).to.throw(AbiViewError, /expected 3 bytes/);
        view.words.set(1, 7n);
        expect(view.words.get(1)).to.equal(7n);
        expect(view.words.toArray()).to.deep.equal([0n, 7n]);
        expect(view.words.length).to.equal(2);
        expect(() => view.words.get(2)).to.throw(AbiViewError, /index 2 outside \[0, 2\)/);
        expect(() => view.words.set(-1, 1n)).to.throw(AbiViewError);
      });

      it('rejects values that do not fit instead of wrapping', function () {
        const { view } = sample.alloc(abi);
        expect(() => (view.small = 256)).to.throw(AbiRangeError, /small: value 256 does not fit an unsigned 8-bit field/);
        expect(() => (view.small = -1)).to.throw(AbiRangeError);
        expect(() => (view.small = 1.5)).to.throw(AbiRangeError);
        expect(() => (view.s8 = 128)).to.throw(AbiRangeError, /a signed 8-bit field/);
        expect(() => (view.s16 = -32769)).to.throw(AbiRangeError);
        expect(() => (view.s32 = 2 ** 31)).to.throw(AbiRangeError);
        expect(() => (view.word = wordMask(abi) + 1n)).to.throw(AbiRangeError);
        expect(() => (view.word = 1 as unknown as bigint)).to.throw(AbiRangeError);
        expect(() => (view.wide = -1n)).to.throw(AbiRangeError);
        view.small = 255;
        expect(view.small).to.equal(255);
      });

      it('refuses a view that does not fit its memory', function () {
        const size = sample.sizeOf(abi);
        expect(() => sample.view(abi, Buffer.alloc(size - 1))).to.throw(AbiViewError, /does not fit/);
        expect(() => sample.view(abi, Buffer.alloc(size), 1)).to.throw(AbiViewError);
        expect(() => sample.view(abi, Buffer.alloc(size), -1)).to.throw(AbiViewError);
        expect(() => sample.view(abi, Buffer.alloc(size), 0.5)).to.throw(AbiViewError);
      });

      it('views over an ArrayBuffer or a Uint8Array slice share its memory', function () {
        const ab = new ArrayBuffer(64 + layout.size);
        sample.view(abi, ab, 64).tail = 5;
        expect(new Uint8Array(ab)[64 + at('tail').offset]).to.equal(5);
        const slice = new Uint8Array(ab, 8, 56 + layout.size);
        sample.view(abi, slice, 56).tail = 6;
        expect(new Uint8Array(ab)[64 + at('tail').offset]).to.equal(6);
      });
    });
  }

  it('an unknown ABI is refused', function () {
    const bogus = { ...X86_64, name: 'x86_16' } as unknown as GuestAbi;
    expect(() => shared_info.layout(bogus)).to.throw(AbiViewError, /unknown guest ABI x86_16/);
  });

  it('guest ABI names', function () {
    expect(isGuestAbiName('x86_32')).to.equal(true);
    expect(isGuestAbiName('arm64')).to.equal(false);
    expect(guestAbi('x86_32')).to.equal(X86_32);
    expect(guestAbi('x86_64')).to.equal(X86_64);
    expect(wordMask(X86_32)).to.equal(0xffffffffn);
    expect(wordMask(X86_64)).to.equal(0xffffffffffffffffn);
  });
});
