/**
 * abi/memory.ts: reservation structs as views over guest memory, the memory_op cmd encoding and
 * the XENMEMF_* helpers. Offsets themselves are the layout oracle's job; here the question is
 * whether reads and writes land where the layout says, on both ABIs.
 */

import { expect } from 'chai';
import { AbiRangeError } from '../../abi/errors.js';
import { X86_32, X86_64, type GuestAbi } from '../../abi/guest-abi.js';
import { ProbeError, runProbe } from '../../abi/probe.js';
import { compareWithOracle, formatMismatch } from '../../abi/oracle.js';
import {
  MEMOP_CMD_MASK,
  MEMOP_EXTENT_SHIFT,
  MEMORY_TOOLS_CONSTANTS,
  XENMEMF_address_bits,
  XENMEMF_exact_node,
  XENMEMF_exact_node_request,
  XENMEMF_get_address_bits,
  XENMEMF_get_node,
  XENMEMF_node,
  XENMEMF_populate_on_demand,
  XENMEM_exchange,
  XENMEM_increase_reservation,
  XENMEM_maximum_ram_page,
  XENMEM_populate_physmap,
  decodeMemopCmd,
  memopCmd,
  xen_memory_domain,
  xen_memory_exchange,
  xen_memory_reservation,
} from '../../abi/memory.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];
const FILL = 0xaa;

function readWord(buf: Buffer, at: number, abi: GuestAbi): bigint {
  return abi.wordSize === 4 ? BigInt(buf.readUInt32LE(at)) : buf.readBigUInt64LE(at);
}

/** Bytes of `buf` outside [start, end) that are no longer the fill pattern. */
function touchedOutside(buf: Buffer, start: number, end: number): number[] {
  const touched: number[] = [];
  buf.forEach((b, i) => {
    if ((i < start || i >= end) && b !== FILL) touched.push(i);
  });
  return touched;
}

describe('abi/memory', function () {
  describe('xen_memory_reservation view', function () {
    for (const abi of ABIS) {
      it(`${abi.name}: nr_extents is written where offsetOf says, at guest word width, and nowhere else`, function () {
        const base = 12;
        const bytes = Buffer.alloc(96, FILL);
        const view = xen_memory_reservation.view(abi, bytes, base);
        view.nr_extents = 0x0102_0304n;
        const at = base + xen_memory_reservation.offsetOf(abi, 'nr_extents');
        expect(readWord(bytes, at, abi)).to.equal(0x0102_0304n);
        expect(touchedOutside(bytes, at, at + abi.wordSize)).to.deep.equal([]);
        expect(view.nr_extents).to.equal(0x0102_0304n);
      });

      it(`${abi.name}: every field reads back what was written`, function () {
        const { bytes, view } = xen_memory_reservation.alloc(abi);
        view.extent_start = 0xc000_1000n;
        view.nr_extents = 7n;
        view.extent_order = 9;
        view.mem_flags = XENMEMF_exact_node(1) | XENMEMF_address_bits(32);
        view.domid = 0x7ff0;
        expect(readWord(bytes, xen_memory_reservation.offsetOf(abi, 'extent_start'), abi)).to.equal(0xc000_1000n);
        expect(bytes.readUInt32LE(xen_memory_reservation.offsetOf(abi, 'extent_order'))).to.equal(9);
        expect(bytes.readUInt16LE(xen_memory_reservation.offsetOf(abi, 'domid'))).to.equal(0x7ff0);
        expect(XENMEMF_get_node(view.mem_flags)).to.equal(1);
        expect(XENMEMF_get_address_bits(view.mem_flags)).to.equal(32);
      });
    }

    it('x86_32: a word-wide field refuses a value above 2^32 - 1 instead of wrapping', function () {
      const { bytes, view } = xen_memory_reservation.alloc(X86_32);
      expect(() => {
        view.nr_extents = 1n << 32n;
      }).to.throw(AbiRangeError, /nr_extents/);
      expect(bytes.every((b) => b === 0)).to.equal(true);
    });

    it('x86_64: the same value fits the 8-byte word', function () {
      const { view } = xen_memory_reservation.alloc(X86_64);
      view.nr_extents = 1n << 32n;
      expect(view.nr_extents).to.equal(1n << 32n);
    });

    it('refuses negative and oversized narrow fields', function () {
      const { view } = xen_memory_reservation.alloc(X86_64);
      expect(() => {
        view.extent_order = -1;
      }).to.throw(AbiRangeError, /extent_order/);
      expect(() => {
        view.domid = 0x1_0000;
      }).to.throw(AbiRangeError, /domid/);
    });
  });

  describe('xen_memory_exchange view', function () {
    for (const abi of ABIS) {
      it(`${abi.name}: out.nr_extents lands inside the embedded out reservation`, function () {
        const bytes = Buffer.alloc(xen_memory_exchange.sizeOf(abi), FILL);
        const view = xen_memory_exchange.view(abi, bytes);
        view.out.nr_extents = 3n;
        const at = xen_memory_exchange.offsetOf(abi, 'out') + xen_memory_reservation.offsetOf(abi, 'nr_extents');
        expect(readWord(bytes, at, abi)).to.equal(3n);
        expect(touchedOutside(bytes, at, at + abi.wordSize)).to.deep.equal([]);
      });

      it(`${abi.name}: in and out are distinct, and nr_exchanged follows them`, function () {
        const { bytes, view } = xen_memory_exchange.alloc(abi);
        view.in.extent_order = 0;
        view.out.extent_order = 9;
        view.nr_exchanged = 5n;
        expect(view.in.extent_order).to.equal(0);
        expect(view.out.extent_order).to.equal(9);
        expect(readWord(bytes, xen_memory_exchange.offsetOf(abi, 'nr_exchanged'), abi)).to.equal(5n);
        expect(xen_memory_exchange.offsetOf(abi, 'out')).to.equal(xen_memory_reservation.sizeOf(abi));
      });
    }

    it('x86_32: nr_exchanged refuses -1 instead of storing all ones', function () {
      const { view } = xen_memory_exchange.alloc(X86_32);
      expect(() => {
        view.nr_exchanged = -1n;
      }).to.throw(AbiRangeError, /nr_exchanged/);
    });
  });

  describe('xen_memory_domain view', function () {
    for (const abi of ABIS) {
      it(`${abi.name}: domid is the only field, at offset 0`, function () {
        const bytes = Buffer.alloc(4, FILL);
        xen_memory_domain.view(abi, bytes).domid = 0x7ff0;
        expect(bytes.readUInt16LE(0)).to.equal(0x7ff0);
        expect(touchedOutside(bytes, 0, 2)).to.deep.equal([]);
      });
    }
  });

  describe('memopCmd / decodeMemopCmd', function () {
    it('a fresh call is the bare sub-op number', function () {
      expect(memopCmd(XENMEM_exchange)).to.equal(11n);
      expect(memopCmd(XENMEM_maximum_ram_page, 0, X86_32)).to.equal(2n);
    });

    it('puts the start extent above MEMOP_EXTENT_SHIFT', function () {
      expect(memopCmd(XENMEM_populate_physmap, 5)).to.equal(6n | (5n << 6n));
      expect(decodeMemopCmd(6n | (5n << 6n))).to.deep.equal({ op: XENMEM_populate_physmap, startExtent: 5n });
    });

    for (const abi of ABIS) {
      it(`${abi.name}: round-trips the lowest and highest start extent for every sub-op bit pattern`, function () {
        const maxExtent = (1n << BigInt(abi.wordSize * 8 - MEMOP_EXTENT_SHIFT)) - 1n;
        for (const op of [0, 1, 28, MEMOP_CMD_MASK]) {
          for (const startExtent of [0n, 1n, maxExtent]) {
            const cmd = memopCmd(op, startExtent, abi);
            expect(cmd < 1n << BigInt(abi.wordSize * 8)).to.equal(true);
            expect(decodeMemopCmd(cmd, abi)).to.deep.equal({ op, startExtent });
          }
        }
      });
    }

    it('accepts number and bigint alike', function () {
      expect(memopCmd(XENMEM_increase_reservation, 3)).to.equal(memopCmd(XENMEM_increase_reservation, 3n));
      expect(decodeMemopCmd(0xc6)).to.deep.equal(decodeMemopCmd(0xc6n));
    });

    it('rejects a sub-op that does not fit MEMOP_CMD_MASK', function () {
      for (const op of [MEMOP_CMD_MASK + 1, -1, 1.5, Number.NaN]) {
        expect(() => memopCmd(op), String(op)).to.throw(AbiRangeError, /op/);
      }
    });

    it('rejects a start extent that does not fit the rest of the guest word', function () {
      expect(() => memopCmd(XENMEM_populate_physmap, 1n << 26n, X86_32)).to.throw(AbiRangeError, /start_extent.*26-bit/);
      expect(memopCmd(XENMEM_populate_physmap, 1n << 26n, X86_64)).to.equal(6n | (1n << 32n));
      expect(() => memopCmd(XENMEM_populate_physmap, 1n << 58n, X86_64)).to.throw(AbiRangeError, /58-bit/);
      expect(() => memopCmd(XENMEM_populate_physmap, -1)).to.throw(AbiRangeError);
      expect(() => memopCmd(XENMEM_populate_physmap, 0.5)).to.throw(AbiRangeError);
      expect(() => memopCmd(XENMEM_populate_physmap, 2 ** 53)).to.throw(AbiRangeError);
    });

    it('rejects a cmd wider than the guest word, negative or fractional', function () {
      expect(() => decodeMemopCmd(1n << 32n, X86_32)).to.throw(AbiRangeError, /32-bit/);
      expect(decodeMemopCmd(1n << 32n, X86_64)).to.deep.equal({ op: 0, startExtent: 1n << 26n });
      expect(() => decodeMemopCmd(1n << 64n)).to.throw(AbiRangeError, /64-bit/);
      expect(() => decodeMemopCmd(-1)).to.throw(AbiRangeError);
      expect(() => decodeMemopCmd(6.5)).to.throw(AbiRangeError);
    });
  });

  describe('XENMEMF helpers', function () {
    it('encodes the node as node + 1 in bits 8-15, and decodes it back', function () {
      expect(XENMEMF_node(0)).to.equal(0x100);
      expect(XENMEMF_get_node(XENMEMF_node(0))).to.equal(0);
      expect(XENMEMF_get_node(XENMEMF_node(254) | XENMEMF_populate_on_demand)).to.equal(254);
    });

    it('decodes "no node named" as 0xff', function () {
      expect(XENMEMF_get_node(0)).to.equal(0xff);
      expect(XENMEMF_get_node(XENMEMF_address_bits(32))).to.equal(0xff);
    });

    it('exact_node adds only XENMEMF_exact_node_request', function () {
      expect(XENMEMF_exact_node(2) ^ XENMEMF_node(2)).to.equal(XENMEMF_exact_node_request);
    });

    it('keeps address bits and node apart', function () {
      const flags = XENMEMF_address_bits(0xff) | XENMEMF_node(7);
      expect(XENMEMF_get_address_bits(flags)).to.equal(0xff);
      expect(XENMEMF_get_node(flags)).to.equal(7);
    });

    it('refuses values that would spill into the neighbouring bits', function () {
      expect(() => XENMEMF_address_bits(256)).to.throw(AbiRangeError);
      expect(() => XENMEMF_node(255)).to.throw(AbiRangeError);
      expect(() => XENMEMF_node(-1)).to.throw(AbiRangeError);
      expect(() => XENMEMF_get_node(2 ** 32)).to.throw(AbiRangeError);
    });
  });

  describe('tools-only sub-ops', function () {
    it('match memory.h compiled with __XEN_TOOLS__ (gcc)', function () {
      let live;
      try {
        live = runProbe({ abi: X86_64, structs: [], constants: [MEMORY_TOOLS_CONSTANTS], defines: ['__XEN_TOOLS__'] });
      } catch (e) {
        if (!(e instanceof ProbeError) || e.reason === 'compile' || e.reason === 'run') throw e;
        this.skip();
      }
      const report = compareWithOracle(X86_64, [], [MEMORY_TOOLS_CONSTANTS], live);
      expect(report.mismatches.map(formatMismatch)).to.deep.equal([]);
      expect(report.constants).to.equal(Object.keys(MEMORY_TOOLS_CONSTANTS.values).length);
    });
  });
});
