/**
 * The oracle for the streams the kit writes: Xen's own verify-stream-v2 (Debian xen-utils-4.17)
 * must accept them — both guest ABIs, pages of every type, v3 with STATIC_DATA_END and CPU
 * policies, v2, Remus checkpoints, a stream saved from an emulated domain through the privileged
 * interface — and must reject deliberately broken ones, which the kit's reader rejects too with
 * the typed error that names the record, the field and the offset.
 *
 * Skips (with the reason) where verify-stream-v2 is not unpacked; fails in CI (scripts/setup
 * unpacks it into .oracles/xen-utils).
 */

import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  X86_32,
  X86_64,
  XEN_DOMCTL_PFINFO_BROKEN,
  XEN_DOMCTL_PFINFO_XALLOC,
  XEN_DOMCTL_PFINFO_XTAB,
  type GuestAbi,
} from '../../abi/index.js';
import { buildDomain } from '../../xen-emu/builder.js';
import { PrivilegedInterface } from '../../xen-emu/privileged.js';
import { Xen } from '../../xen-emu/xen.js';
import {
  BufferOutput,
  EncodingSink,
  REC_TYPE_END,
  REC_TYPE_PAGE_DATA,
  REC_TYPE_X86_PV_P2M_FRAMES,
  REC_TYPE_X86_PV_VCPU_BASIC,
  REC_TYPE_X86_PV_VCPU_XSAVE,
  StreamError,
  StreamHeaderError,
  StreamOrderError,
  StreamRecordError,
  StreamTruncatedError,
  StreamWriter,
  VCPU_GUEST_CONTEXT_SIZE,
  p2mEntriesPerFrame,
  readStream,
  type PageDataEntry,
} from '../../toolstack/index.js';
import { requireOracle } from '../support/oracle.js';
import { SAMPLE_MAX_PFN, sampleStream } from './support/streams.js';
import { runVerifyStreamV2, verifyStreamV2Installed, type VerifyResult } from './support/xen-verify.js';

describe('verify-stream-v2 (Xen 4.17) accepts the streams the kit writes', function () {
  this.timeout(60_000);
  let dir: string;

  before(function () {
    requireOracle(this, verifyStreamV2Installed);
    dir = mkdtempSync(join(tmpdir(), 'xenabi-stream-'));
  });

  after(function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function verify(name: string, bytes: Uint8Array): VerifyResult {
    const file = join(dir, `${name}.stream`);
    writeFileSync(file, bytes);
    return runVerifyStreamV2(file);
  }

  function expectAccepted(r: VerifyResult): void {
    expect(r.status, `${r.command}\n${r.stdout}${r.stderr}`).to.equal(0);
    expect(r.stderr).to.equal('');
  }

  for (const abi of [X86_32, X86_64]) {
    const bits = abi.wordSize * 8;

    it(`a v3 ${abi.name} stream with pages of every type, CPU policies, STATIC_DATA_END and a full vcpu0`, function () {
      const bytes = sampleStream({ abi });
      const r = verify(`v3-${abi.name}`, bytes);
      expectAccepted(r);
      const lines = r.stdout.split('\n');
      expect(lines).to.include('Libxc Image Header: Version 3, little endian');
      expect(lines).to.include('Domain Header: x86 PV from Xen 4.17');
      expect(lines).to.include(`  ${bits}bit guest, ${abi.pagingLevels} levels of pagetables`);
      expect(lines).to.include('Libxc Record: Static data end, length 0');
      expect(lines).to.include(`  Start pfn 0x0, End 0x${SAMPLE_MAX_PFN.toString(16)}`);
      expect(lines).to.include(`  vcpu0 basic context, ${VCPU_GUEST_CONTEXT_SIZE[abi.name]} bytes`);
      expect(lines).to.include('Libxc Record: End, length 0');
      // and the kit's own reader agrees
      const read = readStream(bytes);
      expect(read.summary).to.include({ version: 3, guest_width: abi.wordSize, pt_levels: abi.pagingLevels, endedBy: 'END', bytes: bytes.length });
    });

    it(`a v2 ${abi.name} stream (no STATIC_DATA_END, no policies)`, function () {
      const bytes = sampleStream({ abi, version: 2 });
      const r = verify(`v2-${abi.name}`, bytes);
      expectAccepted(r);
      expect(r.stdout).to.contain('Libxc Image Header: Version 2, little endian');
      expect(r.stdout).not.to.contain('Static data end');
      expect(readStream(bytes).summary?.version).to.equal(2);
    });

    it(`a Remus ${abi.name} stream of 3 checkpoints (END appended, as the verifier reads up to END)`, function () {
      const bytes = sampleStream({ abi, checkpoints: 3 });
      const r = verify(`remus-${abi.name}`, bytes);
      expectAccepted(r);
      expect(r.stdout.match(/^Libxc Record: Checkpoint, length 0$/gm)).to.have.length(3);
      expect(r.stdout.match(/^Libxc Record: x86 PV vcpu basic/gm)).to.have.length(3);
      expect(readStream(bytes, { streamType: 'checkpointed' }).summary).to.include({ checkpoints: 3, endedBy: 'END' });
    });

    it(`a ${abi.name} debug stream: VERIFY, then all memory again`, function () {
      const bytes = sampleStream({ abi, verify: true, fullVcpu: false });
      const r = verify(`verify-${abi.name}`, bytes);
      expectAccepted(r);
      expect(r.stdout).to.contain('Libxc Record: Verify, length 0');
      expect(readStream(bytes).summary?.pageDataRecords).to.equal(3);
    });

    it(`a ${abi.name} stream with real page bytes rather than stamps`, function () {
      expectAccepted(verify(`bytes-${abi.name}`, sampleStream({ abi, bytes: true, fullVcpu: false })));
    });

    it(`a ${abi.name} stream saved from an emulated domain through the privileged interface`, function () {
      const bytes = saveEmulatedDomain(abi);
      const r = verify(`emulated-${abi.name}`, bytes);
      expectAccepted(r);
      expect(r.stdout).to.contain(`  ${bits}bit guest, ${abi.pagingLevels} levels of pagetables`);
      const read = readStream(bytes);
      const types = new Set(read.records.flatMap((x) => (x.record.type === REC_TYPE_PAGE_DATA ? x.record.entries.map((e) => e.type) : [])));
      // Xen's type query gave pinned and unpinned page tables of the guest's levels, and NOTAB pages.
      expect(types.size).to.be.at.least(abi.pagingLevels + 1);
    });
  }

  describe('and rejects broken streams, as the kit reader does with a typed error', function () {
    const good = (): Buffer => sampleStream({ abi: X86_64 });
    const recordAt = (bytes: Uint8Array, type: number, nth = 0): { offset: number; length: number } => {
      const found = readStream(bytes).records.filter((x) => x.record.type === type)[nth];
      if (!found) throw new Error(`no record ${type} #${nth}`);
      return found;
    };

    function bothReject(name: string, bytes: Uint8Array, verifierSays: RegExp, errorClass: abstract new (...args: never[]) => StreamError, expected: Partial<StreamError>): void {
      const r = verify(name, bytes);
      expect(r.status, `${r.command}\n${r.stdout}${r.stderr}`).to.equal(1);
      expect(r.stderr).to.match(verifierSays);
      let caught: unknown;
      try {
        readStream(bytes);
      } catch (e) {
        caught = e;
      }
      expect(caught, 'the kit reader must reject it too').to.be.instanceOf(errorClass);
      expect(caught).to.deep.include(expected);
    }

    it('non-zero record padding (the stream with zero padding passes)', function () {
      const ok = sampleStream({ abi: X86_64, xsaveArea: 516 });
      const xs = recordAt(ok, REC_TYPE_X86_PV_VCPU_XSAVE);
      expect(xs.length % 8, 'the XSAVE record needs padding').to.equal(4);
      expectAccepted(verify('padded', ok));
      const bytes = Buffer.from(ok);
      const pad = xs.offset + 8 + xs.length + 1;
      bytes[pad] = 0xaa;
      bothReject('bad-padding', bytes, /Padding containing non0 bytes found/, StreamRecordError, { code: 'reserved-nonzero', record: 'X86_PV_VCPU_XSAVE', field: 'padding', offset: pad });
    });

    it('a page type of 5 in a PAGE_DATA pfn word', function () {
      const bytes = Buffer.from(good());
      const pd = recordAt(bytes, REC_TYPE_PAGE_DATA);
      const word = pd.offset + 8 + 8 + 8 * 2; // pfn[2]
      bytes.writeUInt32LE(0x50000000 | (bytes.readUInt32LE(word + 4) & 0x0fffffff), word + 4);
      bothReject('bad-type', bytes, /Invalid type value in pfn\[2\]: 0x5000000000000000/, StreamRecordError, { code: 'bad-page-type', record: 'PAGE_DATA', field: 'pfn[2]', offset: word });
    });

    it('a PAGE_DATA count the body does not match', function () {
      const bytes = Buffer.from(good());
      const pd = recordAt(bytes, REC_TYPE_PAGE_DATA);
      bytes.writeUInt32LE(bytes.readUInt32LE(pd.offset + 8) - 1, pd.offset + 8); // one pfn fewer, same length
      bothReject('bad-count', bytes, /Expected 8 \+ \d+ \+ \d+, got \d+/, StreamRecordError, { code: 'bad-length', record: 'PAGE_DATA', field: 'body_length', offset: pd.offset + 4 });
    });

    it('reserved pfn bits set', function () {
      const bytes = Buffer.from(good());
      const pd = recordAt(bytes, REC_TYPE_PAGE_DATA);
      const word = pd.offset + 16 + 8 * 5;
      bytes[word + 6]! |= 0x10; // bit 52
      bothReject('reserved-pfn-bits', bytes, /Reserved bits set in pfn\[5\]: 0x0010000000000000/, StreamRecordError, { code: 'reserved-nonzero', field: 'pfn[5]', offset: word });
    });

    it('a v3 stream relabelled v2 (CPU policy and STATIC_DATA_END are v3 only)', function () {
      const bytes = Buffer.from(good());
      bytes.writeUInt32BE(2, 12);
      bothReject('v3-as-v2', bytes, /x86 CPUID policy record found in v2 stream/, StreamOrderError, { code: 'record-not-allowed', record: 'X86_CPUID_POLICY', offset: 56 });
    });

    it('a stream without its END record', function () {
      const bytes = good();
      const end = recordAt(bytes, REC_TYPE_END);
      bothReject('no-end', bytes.subarray(0, end.offset), /Stream truncated/, StreamTruncatedError, { code: 'truncated', record: 'END', offset: end.offset });
    });

    it('a bad image marker', function () {
      const bytes = Buffer.from(good());
      bytes[3] = 0x7f;
      bothReject('bad-marker', bytes, /Bad image marker/, StreamHeaderError, { code: 'bad-marker', record: 'image header', field: 'marker', offset: 0 });
    });

    it('an unknown mandatory record type', function () {
      const bytes = Buffer.from(good());
      const p2m = recordAt(bytes, REC_TYPE_X86_PV_P2M_FRAMES);
      bytes.writeUInt32LE(0x13, p2m.offset);
      bothReject('unknown-record', bytes, /Unrecognised record type 0x13/, StreamRecordError, { code: 'unknown-mandatory-record', record: 'record 0x13', field: 'type', offset: p2m.offset });
    });

    it('(a verifier gap) PAGE_DATA before X86_PV_P2M_FRAMES: verify-stream-v2 passes it, the kit reader refuses it as libxc restore would', function () {
      const out = new BufferOutput();
      const sink = new EncodingSink(out);
      // Write the records raw: the kit's writer would refuse this order.
      const w = new StreamWriter(sink);
      w.x86PvInfo(X86_64);
      w.staticDataEnd();
      sink.record({ type: REC_TYPE_PAGE_DATA, entries: [{ pfn: 0, type: XEN_DOMCTL_PFINFO_XTAB }] }, w.offset);
      sink.record({ type: REC_TYPE_END }, w.offset + 24);
      const bytes = out.toBuffer();
      expectAccepted(verify('bad-order', bytes));
      expect(() => readStream(bytes)).to.throw(StreamOrderError).that.deep.includes({ code: 'out-of-order', record: 'PAGE_DATA', offset: 56 + 8 });
    });
  });
});

/**
 * Saves an emulated domain the simple way (not a strategy: no live rounds, page tables not
 * normalised): types from Xen's type query, contents from `frameContent` (stamps or bytes), the p2m
 * frames as the builder laid them out, plus an XTAB, an XALLOC and a BROKEN pfn past the guest's
 * memory.
 */
function saveEmulatedDomain(abi: GuestAbi): Buffer {
  const xen = new Xen({ maxPage: 8192 });
  const dom0 = buildDomain(xen, { abi: X86_64, memoryPages: 1100, privileged: true });
  const guest = buildDomain(xen, { abi, memoryPages: 1200, maxPages: 1300 });
  const tools = new PrivilegedInterface(xen, dom0.dom.domid);
  const domid = guest.dom.domid;
  // Some pages the guest wrote as whole-page stamps.
  for (let pfn = guest.scratchPfn; pfn < guest.scratchPfn + 4; pfn++) xen.storeStamp({ domid, by: 'guest' }, Number(guest.p2mEntry(pfn)), 0xabc0 + pfn);

  const maxPfn = guest.memoryPages + 2;
  const mfns = [...Array(guest.memoryPages).keys()].map((pfn) => Number(guest.p2mEntry(pfn)));
  const types = tools.pageTypes(domid, mfns);
  const entries: PageDataEntry[] = mfns.map((mfn, pfn) => ({ pfn, type: types[pfn]!, content: tools.frameContent(domid, mfn) }));
  entries.push({ pfn: guest.memoryPages, type: XEN_DOMCTL_PFINFO_XALLOC });
  entries.push({ pfn: guest.memoryPages + 1, type: XEN_DOMCTL_PFINFO_BROKEN });
  entries.push({ pfn: maxPfn, type: XEN_DOMCTL_PFINFO_XTAB });

  const out = new BufferOutput();
  const w = new StreamWriter(new EncodingSink(out));
  w.x86PvInfo(abi);
  w.staticDataEnd();
  const frames = Math.floor(maxPfn / p2mEntriesPerFrame(abi.wordSize)) + 1;
  expect(frames, 'the guest p2m covers max_pfn').to.equal(guest.p2mFrames);
  w.p2mFrames(0, maxPfn, [...Array(frames).keys()].map((i) => guest.p2mPfn + i));
  w.pageData(entries);
  w.tscInfo({ mode: 0, khz: 1_000_000, nsec: 0n, incarnation: 0 });
  w.sharedInfo(tools.sharedInfo(domid).slice());
  w.vcpu(REC_TYPE_X86_PV_VCPU_BASIC, 0, new Uint8Array(VCPU_GUEST_CONTEXT_SIZE[abi.name]));
  w.end();
  return out.toBuffer();
}
