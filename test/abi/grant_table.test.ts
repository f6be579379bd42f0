/**
 * abi/grant_table.ts: grant entries and grant_table_op argument structs as views over guest
 * memory (union members alias, signed status fields, word-wide handles), and the GNTST_* helpers.
 * Offsets themselves are the layout oracle's job.
 */

import { expect } from 'chai';
import { AbiRangeError } from '../../abi/errors.js';
import { X86_32, X86_64, type GuestAbi } from '../../abi/guest-abi.js';
import {
  GNTCOPY_dest_gref,
  GNTCOPY_source_gref,
  GNTMAP_application_map,
  GNTMAP_contains_pte,
  GNTMAP_device_map,
  GNTMAP_guest_avail_mask,
  GNTMAP_host_map,
  GNTMAP_readonly,
  GNTST_bad_copy_arg,
  GNTST_bad_gntref,
  GNTST_eagain,
  GNTST_general_error,
  GNTST_no_space,
  GNTST_okay,
  GNTTABOP_error_msgs,
  GRANT_TABLE_CONSTANTS,
  GTF_permit_access,
  GTF_readonly,
  GTF_sub_page,
  grant_entry_v1,
  grant_entry_v2,
  gnttab_copy,
  gnttab_copy_ptr,
  gnttab_get_status_frames,
  gnttab_map_grant_ref,
  gnttab_setup_table,
  gntstMessage,
  gntstName,
} from '../../abi/grant_table.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];

describe('abi/grant_table', function () {
  describe('grant_entry_v1 view', function () {
    for (const abi of ABIS) {
      it(`${abi.name}: flags, domid and frame land where offsetOf says`, function () {
        const page = Buffer.alloc(4096);
        const ref = 3;
        const entry = grant_entry_v1.view(abi, page, ref * grant_entry_v1.sizeOf(abi));
        entry.domid = 0;
        entry.frame = 0x1234_5678;
        entry.flags = GTF_permit_access | GTF_readonly;
        const at = ref * grant_entry_v1.sizeOf(abi);
        expect(page.readUInt16LE(at + grant_entry_v1.offsetOf(abi, 'flags'))).to.equal(GTF_permit_access | GTF_readonly);
        expect(page.readUInt32LE(at + grant_entry_v1.offsetOf(abi, 'frame'))).to.equal(0x1234_5678);
        expect(page.subarray(0, at).every((b) => b === 0)).to.equal(true);
      });
    }

    it('refuses a frame at or above 2^32 (v1 frames are 32 bits)', function () {
      const { view } = grant_entry_v1.alloc(X86_64);
      expect(() => {
        view.frame = 2 ** 32;
      }).to.throw(AbiRangeError, /frame/);
    });
  });

  describe('grant_entry_v2 union', function () {
    for (const abi of ABIS) {
      it(`${abi.name}: full_page.frame is read back through sub_page.frame`, function () {
        const { view } = grant_entry_v2.alloc(abi);
        view.full_page.frame = 0x1_2345_6789n;
        expect(view.sub_page.frame).to.equal(0x1_2345_6789n);
      });

      it(`${abi.name}: every member's hdr is the same 4 bytes`, function () {
        const { bytes, view } = grant_entry_v2.alloc(abi);
        view.hdr.flags = GTF_permit_access | GTF_sub_page;
        view.sub_page.hdr.domid = 7;
        expect(view.full_page.hdr.flags).to.equal(GTF_permit_access | GTF_sub_page);
        expect(view.transitive.hdr.domid).to.equal(7);
        expect(bytes.readUInt16LE(grant_entry_v2.offsetOf(abi, 'hdr'))).to.equal(GTF_permit_access | GTF_sub_page);
      });

      it(`${abi.name}: transitive.gref and __spacer[2] alias the low half of the 64-bit frame`, function () {
        const { view } = grant_entry_v2.alloc(abi);
        view.full_page.frame = 0xaaaa_bbbb_cccc_ddddn;
        expect(view.transitive.gref).to.equal(0xcccc_dddd);
        expect(view.__spacer.get(2)).to.equal(0xcccc_dddd);
        expect(view.__spacer.get(3)).to.equal(0xaaaa_bbbb);
      });

      it(`${abi.name}: sub_page.page_off and length overlay full_page.pad0`, function () {
        const { view } = grant_entry_v2.alloc(abi);
        view.sub_page.page_off = 0x100;
        view.sub_page.length = 0x200;
        expect(view.full_page.pad0).to.equal(0x0200_0100);
        expect(view.transitive.trans_domid).to.equal(0x100);
      });
    }

    it('a write outside the union stays outside: a 16-byte entry in a page touches only its bytes', function () {
      const page = Buffer.alloc(64, 0xee);
      grant_entry_v2.view(X86_64, page, 16).__spacer.set(3, 0);
      expect(page.readUInt32LE(28)).to.equal(0);
      expect([...page.subarray(0, 28), ...page.subarray(32)].every((b) => b === 0xee)).to.equal(true);
    });
  });

  describe('gnttab_copy', function () {
    for (const abi of ABIS) {
      it(`${abi.name}: source.u.gmfn lands inside source, at guest word width`, function () {
        const { bytes, view } = gnttab_copy.alloc(abi);
        view.source.u.gmfn = 0xfeed_beefn;
        const at = gnttab_copy.offsetOf(abi, 'source') + gnttab_copy_ptr.offsetOf(abi, 'u.gmfn');
        const word = abi.wordSize === 4 ? BigInt(bytes.readUInt32LE(at)) : bytes.readBigUInt64LE(at);
        expect(word).to.equal(0xfeed_beefn);
        expect(view.source.u.ref).to.equal(0xfeed_beef);
        expect(view.dest.u.gmfn).to.equal(0n);
      });

      it(`${abi.name}: dest fields do not overlap source fields`, function () {
        const { view } = gnttab_copy.alloc(abi);
        view.flags = GNTCOPY_source_gref | GNTCOPY_dest_gref;
        view.source.offset = 0x10;
        view.dest.offset = 0xff0;
        view.dest.domid = 0x7ff0;
        view.len = 0x10;
        expect(view.source.offset).to.equal(0x10);
        expect(view.source.domid).to.equal(0);
        expect(view.dest.offset).to.equal(0xff0);
        expect(view.len).to.equal(0x10);
      });
    }

    it('x86_32: gmfn is 4 bytes, so a frame above 2^32 - 1 is refused', function () {
      const { view } = gnttab_copy.alloc(X86_32);
      expect(() => {
        view.dest.u.gmfn = 1n << 32n;
      }).to.throw(AbiRangeError, /gmfn/);
    });

    it('status is signed: GNTST_bad_copy_arg reads back negative', function () {
      const { bytes, view } = gnttab_copy.alloc(X86_64);
      view.status = GNTST_bad_copy_arg;
      expect(view.status).to.equal(-10);
      expect(bytes.readInt16LE(gnttab_copy.offsetOf(X86_64, 'status'))).to.equal(-10);
      expect(() => {
        view.status = -0x8001;
      }).to.throw(AbiRangeError, /status/);
    });
  });

  describe('gnttab_map_grant_ref', function () {
    it('host_addr and dev_bus_addr are 64-bit on x86_32 too', function () {
      const { view } = gnttab_map_grant_ref.alloc(X86_32);
      view.host_addr = 0x1_0000_0000n;
      view.dev_bus_addr = 0xffff_ffff_ffff_f000n;
      expect(view.host_addr).to.equal(0x1_0000_0000n);
      expect(view.dev_bus_addr).to.equal(0xffff_ffff_ffff_f000n);
    });

    it('a status written by Xen reads back as the GNTST_* value', function () {
      const { view } = gnttab_map_grant_ref.alloc(X86_64);
      view.status = GNTST_bad_gntref;
      expect(gntstName(view.status)).to.equal('GNTST_bad_gntref');
    });
  });

  describe('word-wide guest handles', function () {
    it('setup_table.frame_list refuses a 64-bit address on x86_32 and keeps it on x86_64', function () {
      expect(() => {
        gnttab_setup_table.alloc(X86_32).view.frame_list = 0xffff_8000_0000_0000n;
      }).to.throw(AbiRangeError, /frame_list/);
      const { view } = gnttab_setup_table.alloc(X86_64);
      view.frame_list = 0xffff_8000_0000_0000n;
      expect(view.frame_list).to.equal(0xffff_8000_0000_0000n);
    });

    it('get_status_frames.frame_list is a word, though it points at uint64_t elements', function () {
      const { view } = gnttab_get_status_frames.alloc(X86_32);
      view.frame_list = 0xc000_0000n;
      expect(view.frame_list).to.equal(0xc000_0000n);
      expect(() => {
        view.frame_list = 1n << 32n;
      }).to.throw(AbiRangeError);
    });
  });

  describe('GNTST_* messages and names', function () {
    it('GNTTABOP_error_msgs is indexed by -status', function () {
      expect(gntstMessage(GNTST_okay)).to.equal('okay');
      expect(gntstMessage(GNTST_general_error)).to.equal('undefined error');
      expect(gntstMessage(GNTST_bad_copy_arg)).to.equal('copy arguments cross page boundary');
      expect(gntstMessage(GNTST_no_space)).to.equal(GNTTABOP_error_msgs[GNTTABOP_error_msgs.length - 1]);
    });

    it('has one message per GNTST_* code, and cannot be changed', function () {
      const codes = Object.keys(GRANT_TABLE_CONSTANTS.values).filter((n) => n.startsWith('GNTST_'));
      expect(GNTTABOP_error_msgs).to.have.length(codes.length);
      expect(Object.isFrozen(GNTTABOP_error_msgs)).to.equal(true);
    });

    it('names an unknown status instead of returning undefined', function () {
      expect(gntstMessage(GNTST_no_space - 1)).to.equal('unknown grant status -14');
      expect(gntstMessage(1)).to.equal('unknown grant status 1');
      expect(gntstMessage(-1.5)).to.equal('unknown grant status -1.5');
      expect(gntstName(-99)).to.equal('GNTST(-99)');
    });

    it('gntstName gives the Xen name', function () {
      expect(gntstName(GNTST_okay)).to.equal('GNTST_okay');
      expect(gntstName(GNTST_eagain)).to.equal('GNTST_eagain');
    });
  });

  describe('flag sets', function () {
    it('GNTMAP_guest_avail_mask is bits 16-31 and overlaps no other GNTMAP flag', function () {
      expect(GNTMAP_guest_avail_mask).to.equal(0xffff_0000);
      const others = GNTMAP_device_map | GNTMAP_host_map | GNTMAP_readonly | GNTMAP_application_map | GNTMAP_contains_pte;
      expect(GNTMAP_guest_avail_mask & others).to.equal(0);
    });
  });
});
