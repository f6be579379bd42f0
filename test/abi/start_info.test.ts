import { expect } from 'chai';
import { AbiRangeError, AbiViewError } from '../../abi/errors.js';
import { X86_32, X86_64 } from '../../abi/guest-abi.js';
import {
  MAX_GUEST_CMDLINE,
  SIF_INITDOMAIN,
  SIF_MOD_START_PFN,
  SIF_MULTIBOOT_MOD,
  SIF_PM_MASK,
  SIF_PRIVILEGED,
  SIF_VIRT_P2M_4TOOLS,
  START_INFO_CONSTANTS,
  decodeCString,
  encodeCmdLine,
  start_info,
  startInfoMagic,
} from '../../abi/start_info.js';

const readWord = (bytes: Buffer, at: number, size: number): bigint =>
  size === 8 ? bytes.readBigUInt64LE(at) : BigInt(bytes.readUInt32LE(at));

describe('abi/start_info: views', () => {
  for (const abi of [X86_32, X86_64]) {
    it(`writes console.domU.mfn and .evtchn where offsetOf says, and aliases dom0 over them on ${abi.name}`, () => {
      const { bytes, view } = start_info.alloc(abi);
      view.console.domU.mfn = 0x12345n;
      view.console.domU.evtchn = 7;
      expect(readWord(bytes, start_info.offsetOf(abi, 'console.domU.mfn'), abi.wordSize)).to.equal(0x12345n);
      expect(bytes.readUInt32LE(start_info.offsetOf(abi, 'console.domU.evtchn'))).to.equal(7);
      expect(start_info.offsetOf(abi, 'console.dom0.info_off')).to.equal(start_info.offsetOf(abi, 'console.domU.mfn'));
      // dom0.info_off overlays the low half of domU.mfn on both ABIs.
      expect(view.console.dom0.info_off).to.equal(0x12345);
    });

    it(`keeps the p2m-related words where the builder and the guest expect them on ${abi.name}`, () => {
      const { bytes, view } = start_info.alloc(abi);
      view.nr_pages = 0x40000n;
      view.mfn_list = abi.wordSize === 8 ? 0xffffffff80800000n : 0xc0800000n;
      view.flags = SIF_VIRT_P2M_4TOOLS;
      view.first_p2m_pfn = 0x1000n;
      view.nr_p2m_frames = 0x201n;
      expect(readWord(bytes, start_info.offsetOf(abi, 'nr_pages'), abi.wordSize)).to.equal(0x40000n);
      expect(readWord(bytes, start_info.offsetOf(abi, 'mfn_list'), abi.wordSize)).to.equal(view.mfn_list);
      expect(bytes.readUInt32LE(start_info.offsetOf(abi, 'flags'))).to.equal(SIF_VIRT_P2M_4TOOLS);
      expect(start_info.offsetOf(abi, 'first_p2m_pfn')).to.equal(start_info.offsetOf(abi, 'cmd_line') + MAX_GUEST_CMDLINE);
      expect(readWord(bytes, start_info.offsetOf(abi, 'nr_p2m_frames'), abi.wordSize)).to.equal(0x201n);
    });

    it(`writes the builder's magic string for ${abi.name}`, () => {
      const { bytes, view } = start_info.alloc(abi);
      view.magic = startInfoMagic(abi);
      expect(decodeCString(bytes.subarray(0, 32))).to.equal(abi.name === 'x86_64' ? 'xen-3.0-x86_64' : 'xen-3.0-x86_32p');
    });

    it(`writes the command line at its offset on ${abi.name}`, () => {
      const { bytes, view } = start_info.alloc(abi);
      view.cmd_line = encodeCmdLine('console=hvc0 xen_512gb_limit=0');
      const at = start_info.offsetOf(abi, 'cmd_line');
      expect(decodeCString(bytes.subarray(at, at + MAX_GUEST_CMDLINE))).to.equal('console=hvc0 xen_512gb_limit=0');
    });
  }

  it('aliases dom0.info_size with domU.evtchn on x86_32 but with the high half of domU.mfn on x86_64', () => {
    const narrow = start_info.alloc(X86_32).view;
    narrow.console.domU.evtchn = 9;
    expect(narrow.console.dom0.info_size).to.equal(9);
    const wide = start_info.alloc(X86_64).view;
    wide.console.domU.mfn = 0x0000000300000002n;
    wide.console.domU.evtchn = 9;
    expect(wide.console.dom0.info_off).to.equal(2);
    expect(wide.console.dom0.info_size).to.equal(3);
  });

  it('rejects a store_mfn wider than a 32-bit guest word', () => {
    const { view } = start_info.alloc(X86_32);
    expect(() => {
      view.store_mfn = 1n << 32n;
    }).to.throw(AbiRangeError);
  });

  it('rejects a magic of the wrong length', () => {
    const { view } = start_info.alloc(X86_64);
    expect(() => {
      view.magic = Buffer.from('xen-3.0-x86_64');
    }).to.throw(AbiViewError);
  });
});

describe('abi/start_info: command line', () => {
  it('accepts MAX_GUEST_CMDLINE - 1 bytes and rejects one more (the NUL must fit)', () => {
    expect(encodeCmdLine('x'.repeat(MAX_GUEST_CMDLINE - 1))).to.have.length(MAX_GUEST_CMDLINE);
    expect(() => encodeCmdLine('x'.repeat(MAX_GUEST_CMDLINE))).to.throw(AbiViewError);
  });

  it('rejects an embedded NUL', () => {
    expect(() => encodeCmdLine('a\0b')).to.throw(AbiViewError);
  });

  it('decodes a field with no NUL as all of its bytes', () => {
    expect(decodeCString(Buffer.from('abcd'))).to.equal('abcd');
  });
});

describe('abi/start_info: SIF flags', () => {
  it('gives each single-bit flag its own bit below the power-management byte', () => {
    const flags = [SIF_PRIVILEGED, SIF_INITDOMAIN, SIF_MULTIBOOT_MOD, SIF_MOD_START_PFN, SIF_VIRT_P2M_4TOOLS];
    expect(flags).to.deep.equal([1, 2, 4, 8, 16]);
    expect(flags.reduce((a, b) => a | b, 0) & SIF_PM_MASK).to.equal(0);
    expect(SIF_PM_MASK).to.equal(0xff00);
  });

  it('lists every flag and MAX_GUEST_CMDLINE for the header check', () => {
    expect(Object.keys(START_INFO_CONSTANTS.values)).to.have.members([
      'MAX_GUEST_CMDLINE',
      'SIF_PRIVILEGED',
      'SIF_INITDOMAIN',
      'SIF_MULTIBOOT_MOD',
      'SIF_MOD_START_PFN',
      'SIF_VIRT_P2M_4TOOLS',
      'SIF_PM_MASK',
    ]);
    expect(START_INFO_CONSTANTS.header).to.equal('xen.h');
  });
});
