import { expect } from 'chai';
import { AbiRangeError, AbiViewError } from '../../abi/errors.js';
import { PAGE_SIZE, X86_32, X86_64 } from '../../abi/guest-abi.js';
import { TOOLS_INVALID_MFN } from '../../abi/page.js';
import {
  FOREIGN_FRAME_BIT,
  IDENTITY_FRAME_BIT,
  INVALID_P2M_ENTRY,
  P2M_GENERATION_RESET,
  P2mArray,
  bumpGeneration,
  classifyFll,
  foreignFrame,
  generationChangesBetween,
  identityFrame,
  isForeignFrame,
  isGenerationAtRest,
  isIdentityFrame,
  isInvalidEntry,
  isSnapshotConsistent,
  p2mGeometry,
  p2mLeafFrames,
  p2mLeafIndex,
  p2mMidIndex,
  p2mTopIndex,
  pfnToMfnEntry,
  toolsP2mEntry,
} from '../../abi/p2m.js';

const indices = (abi: typeof X86_64, pfn: number): number[] => [
  p2mTopIndex(abi, pfn),
  p2mMidIndex(abi, pfn),
  p2mLeafIndex(abi, pfn),
];

describe('abi/p2m: tree geometry', () => {
  it('gives x86_64 512 eight-byte entries per page and a 2^27-pfn tree', () => {
    expect(p2mGeometry(X86_64)).to.include({
      entryBytes: 8,
      entriesPerPage: 512,
      pfnsPerLeaf: 512,
      pfnsPerMid: 2 ** 18,
      maxPfns: 2 ** 27,
    });
  });

  it('gives x86_32 1024 four-byte entries per page and a 2^30-pfn tree', () => {
    expect(p2mGeometry(X86_32)).to.include({
      entryBytes: 4,
      entriesPerPage: 1024,
      pfnsPerLeaf: 1024,
      pfnsPerMid: 2 ** 20,
      maxPfns: 2 ** 30,
    });
  });

  it('splits x86_64 pfns into top/mid/leaf at the 511/512 and 2^18 boundaries', () => {
    expect(indices(X86_64, 0)).to.deep.equal([0, 0, 0]);
    expect(indices(X86_64, 511)).to.deep.equal([0, 0, 511]);
    expect(indices(X86_64, 512)).to.deep.equal([0, 1, 0]);
    expect(indices(X86_64, 2 ** 18 - 1)).to.deep.equal([0, 511, 511]);
    expect(indices(X86_64, 2 ** 18)).to.deep.equal([1, 0, 0]);
    expect(indices(X86_64, 2 ** 27 - 1)).to.deep.equal([511, 511, 511]);
  });

  it('splits x86_32 pfns at 1023/1024 and 2^20', () => {
    expect(indices(X86_32, 512)).to.deep.equal([0, 0, 512]);
    expect(indices(X86_32, 1024)).to.deep.equal([0, 1, 0]);
    expect(indices(X86_32, 2 ** 18)).to.deep.equal([0, 256, 0]);
    expect(indices(X86_32, 2 ** 20)).to.deep.equal([1, 0, 0]);
    expect(indices(X86_32, 2 ** 30 - 1)).to.deep.equal([1023, 1023, 1023]);
  });

  it('rejects pfns the tree cannot hold', () => {
    expect(() => p2mTopIndex(X86_64, 2 ** 27)).to.throw(AbiViewError);
    expect(() => p2mLeafIndex(X86_32, 2 ** 30)).to.throw(AbiViewError);
    expect(() => p2mMidIndex(X86_64, -1)).to.throw(AbiViewError);
    expect(() => p2mMidIndex(X86_64, 1.5)).to.throw(AbiViewError);
  });

  it('counts leaf frames for a number of entries', () => {
    expect(p2mLeafFrames(X86_64, 0)).to.equal(0);
    expect(p2mLeafFrames(X86_64, 512)).to.equal(1);
    expect(p2mLeafFrames(X86_64, 513)).to.equal(2);
    expect(p2mLeafFrames(X86_32, 1025)).to.equal(2);
  });
});

describe('abi/p2m: entry markers', () => {
  it('puts INVALID at ~0 and the foreign and identity bits at the top two bits of the guest word', () => {
    expect(INVALID_P2M_ENTRY(X86_64)).to.equal(0xffffffffffffffffn);
    expect(INVALID_P2M_ENTRY(X86_32)).to.equal(0xffffffffn);
    expect(FOREIGN_FRAME_BIT(X86_64)).to.equal(1n << 63n);
    expect(IDENTITY_FRAME_BIT(X86_64)).to.equal(1n << 62n);
    expect(FOREIGN_FRAME_BIT(X86_32)).to.equal(1n << 31n);
    expect(IDENTITY_FRAME_BIT(X86_32)).to.equal(1n << 30n);
  });

  for (const abi of [X86_32, X86_64]) {
    it(`recognises marked entries but never INVALID as foreign or identity on ${abi.name}`, () => {
      const invalid = INVALID_P2M_ENTRY(abi);
      expect(isInvalidEntry(abi, invalid)).to.equal(true);
      expect(isForeignFrame(abi, invalid)).to.equal(false);
      expect(isIdentityFrame(abi, invalid)).to.equal(false);
      expect(isForeignFrame(abi, foreignFrame(abi, 0x1234n))).to.equal(true);
      expect(isIdentityFrame(abi, foreignFrame(abi, 0x1234n))).to.equal(false);
      expect(isIdentityFrame(abi, identityFrame(abi, 0xfee00n))).to.equal(true);
      expect(isForeignFrame(abi, 0x1234n)).to.equal(false);
    });

    it(`strips marker bits in pfn_to_mfn except from INVALID on ${abi.name}`, () => {
      expect(pfnToMfnEntry(abi, foreignFrame(abi, 0x1234n))).to.equal(0x1234n);
      expect(pfnToMfnEntry(abi, identityFrame(abi, 0xfee00n))).to.equal(0xfee00n);
      expect(pfnToMfnEntry(abi, INVALID_P2M_ENTRY(abi))).to.equal(INVALID_P2M_ENTRY(abi));
    });

    it(`refuses frames that would collide with the marker bits on ${abi.name}`, () => {
      expect(() => foreignFrame(abi, IDENTITY_FRAME_BIT(abi))).to.throw(AbiRangeError);
      expect(() => identityFrame(abi, FOREIGN_FRAME_BIT(abi))).to.throw(AbiRangeError);
    });
  }

  it('rejects an entry wider than the guest word', () => {
    expect(() => isForeignFrame(X86_32, 1n << 32n)).to.throw(AbiRangeError);
  });

  it("widens a 32-bit INVALID to the toolstack's 64-bit INVALID_MFN and leaves the rest alone", () => {
    expect(toolsP2mEntry(X86_32, 0xffffffffn)).to.equal(TOOLS_INVALID_MFN);
    expect(toolsP2mEntry(X86_32, foreignFrame(X86_32, 5n))).to.equal(0x80000005n);
    expect(toolsP2mEntry(X86_64, 0xffffffffn)).to.equal(0xffffffffn);
  });
});

describe('abi/p2m: pfn_to_mfn_frame_list_list', () => {
  it('classifies 0, ~0 at guest width, in-range and out-of-range values', () => {
    expect(classifyFll(X86_64, 0n, 0x100000n)).to.equal('not-set-up');
    expect(classifyFll(X86_64, 0xffffffffffffffffn, 0x100000n)).to.equal('invalid-use-linear');
    expect(classifyFll(X86_32, 0xffffffffn, 0x100000n)).to.equal('invalid-use-linear');
    expect(classifyFll(X86_64, 0x100000n, 0x100000n)).to.equal('valid');
    expect(classifyFll(X86_64, 0x100001n, 0x100000n)).to.equal('out-of-range');
  });

  it('treats a 32-bit ~0 in a 64-bit guest as an out-of-range MFN, not as "use the linear list"', () => {
    expect(classifyFll(X86_64, 0xffffffffn, 0x100000n)).to.equal('out-of-range');
  });

  it('rejects an fll wider than the guest word', () => {
    expect(() => classifyFll(X86_32, 1n << 32n, 0x100000n)).to.throw(AbiRangeError);
  });
});

describe('abi/p2m: generation protocol', () => {
  it('is at rest when even', () => {
    expect(isGenerationAtRest(P2M_GENERATION_RESET)).to.equal(true);
    expect(isGenerationAtRest(1n)).to.equal(false);
    expect(isGenerationAtRest(4n)).to.equal(true);
  });

  it('counts bumps, started and completed changes between two readings', () => {
    expect(generationChangesBetween(X86_64, 0n, 4n)).to.deep.equal({ bumps: 4n, started: 2n, completed: 2n });
    expect(generationChangesBetween(X86_64, 0n, 1n)).to.deep.equal({ bumps: 1n, started: 1n, completed: 0n });
    expect(generationChangesBetween(X86_64, 1n, 2n)).to.deep.equal({ bumps: 1n, started: 0n, completed: 1n });
    expect(generationChangesBetween(X86_64, 1n, 4n)).to.deep.equal({ bumps: 3n, started: 1n, completed: 2n });
    expect(generationChangesBetween(X86_64, 6n, 6n)).to.deep.equal({ bumps: 0n, started: 0n, completed: 0n });
  });

  it('wraps at the guest word like the guest\'s plain ++', () => {
    expect(bumpGeneration(X86_32, 0xffffffffn)).to.equal(0n);
    expect(bumpGeneration(X86_64, 0xffffffffn)).to.equal(0x100000000n);
    expect(generationChangesBetween(X86_32, 0xffffffffn, 1n)).to.deep.equal({ bumps: 2n, started: 1n, completed: 1n });
  });

  it('calls a snapshot consistent only between two equal even readings', () => {
    expect(isSnapshotConsistent(2n, 2n)).to.equal(true);
    expect(isSnapshotConsistent(3n, 3n)).to.equal(false);
    expect(isSnapshotConsistent(2n, 4n)).to.equal(false);
  });
});

describe('abi/p2m: P2mArray', () => {
  for (const abi of [X86_32, X86_64]) {
    const size = abi.wordSize;
    const max = abi.wordSize === 8 ? 0xffffffffffffffffn : 0xffffffffn;

    it(`starts INVALID and stores one guest-width element per set on ${abi.name}`, () => {
      const p2m = P2mArray.alloc(abi, 4);
      expect(p2m.get(3)).to.equal(INVALID_P2M_ENTRY(abi));
      expect(p2m.isInvalid(3)).to.equal(true);
      p2m.set(1, 0x1234n);
      expect(p2m.get(1)).to.equal(0x1234n);
      expect(p2m.isInvalid(1)).to.equal(false);
      const bytes = p2m.asBytes();
      expect(bytes.length).to.equal(4 * size);
      expect(bytes.subarray(size, 2 * size)).to.deep.equal(Buffer.from([0x34, 0x12, ...new Array(size - 2).fill(0)]));
      expect(bytes.subarray(0, size).every((b) => b === 0xff)).to.equal(true);
      expect(bytes.subarray(2 * size).every((b) => b === 0xff)).to.equal(true);
    });

    it(`rejects values outside the guest word and pfns outside the array on ${abi.name}`, () => {
      const p2m = P2mArray.alloc(abi, 4);
      p2m.set(0, max);
      expect(p2m.get(0)).to.equal(max);
      expect(() => p2m.set(0, max + 1n)).to.throw(AbiRangeError);
      expect(() => p2m.set(0, -1n)).to.throw(AbiRangeError);
      expect(() => p2m.set(0, 5 as unknown as bigint)).to.throw(AbiRangeError);
      expect(() => p2m.set(4, 1n)).to.throw(AbiViewError);
      expect(() => p2m.get(-1)).to.throw(AbiViewError);
      expect(() => p2m.get(1.5)).to.throw(AbiViewError);
    });

    it(`views one leaf page in shared memory on ${abi.name}`, () => {
      const frame = Buffer.alloc(PAGE_SIZE);
      const leaf = P2mArray.page(abi, frame);
      expect(leaf.length).to.equal(p2mGeometry(abi).entriesPerPage);
      leaf.set(leaf.length - 1, 0xabcdn);
      expect(frame.readUInt32LE(PAGE_SIZE - size)).to.equal(0xabcd);
      frame.writeUInt32LE(0x77, 5 * size);
      expect(leaf.get(5)).to.equal(0x77n);
    });

    it(`requires guest-word alignment for a view on ${abi.name}`, () => {
      const memory = new ArrayBuffer(64);
      expect(P2mArray.over(abi, memory, size, 2).length).to.equal(2);
      expect(() => P2mArray.over(abi, memory, 2, 2)).to.throw(AbiViewError);
      expect(() => P2mArray.over(abi, memory, 0, 64 / size + 1)).to.throw(AbiViewError);
    });

    it(`finds changed pfns across page boundaries and within a range on ${abi.name}`, () => {
      const perPage = p2mGeometry(abi).entriesPerPage;
      const sent = P2mArray.alloc(abi, perPage * 70);
      for (let pfn = 0; pfn < sent.length; pfn++) sent.set(pfn, BigInt(pfn + 0x1000));
      const now = sent.snapshot();
      expect(now.findChanged(sent)).to.deep.equal([]);
      expect(now.equals(sent)).to.equal(true);
      const changed = [0, perPage - 1, perPage, perPage * 64, sent.length - 1];
      for (const pfn of changed) now.set(pfn, INVALID_P2M_ENTRY(abi));
      expect(now.findChanged(sent)).to.deep.equal(changed);
      expect(now.firstChanged(sent, 1)).to.equal(perPage - 1);
      expect(now.findChanged(sent, 1, perPage * 64)).to.deep.equal([perPage - 1, perPage]);
      expect(now.equals(sent)).to.equal(false);
      expect(now.equals(sent, 1, perPage - 1)).to.equal(true);
      now.copyFrom(sent, 0, perPage);
      expect(now.findChanged(sent)).to.deep.equal([perPage, perPage * 64, sent.length - 1]);
    });

    it(`finds a pfn by its entry on ${abi.name}`, () => {
      const p2m = P2mArray.alloc(abi, 8);
      p2m.set(6, 0x42n);
      expect(p2m.indexOf(0x42n)).to.equal(6);
      expect(p2m.indexOf(0x43n)).to.equal(-1);
    });
  }

  it('sees a change only in the high half of a 64-bit element', () => {
    const a = P2mArray.alloc(X86_64, 4, 0n);
    const b = a.snapshot();
    b.set(2, 1n << 40n);
    expect(b.findChanged(a)).to.deep.equal([2]);
  });

  it('refuses a typed array of the other ABI and comparisons across ABIs', () => {
    expect(() => new P2mArray(X86_64, new Uint32Array(4))).to.throw(AbiViewError);
    expect(() => new P2mArray(X86_32, new BigUint64Array(4))).to.throw(AbiViewError);
    expect(() => P2mArray.alloc(X86_32, 4).findChanged(P2mArray.alloc(X86_64, 4))).to.throw(AbiViewError);
    expect(() => P2mArray.alloc(X86_32, 4).findChanged(P2mArray.alloc(X86_32, 2), 0, 4)).to.throw(AbiViewError);
  });
});
