import { expect } from 'chai';
import { AbiRangeError } from '../../abi/errors.js';
import { X86_32, X86_64, wordMask } from '../../abi/guest-abi.js';
import {
  DOMID_CONSTANTS,
  DOMID_FIRST_RESERVED,
  DOMID_IO,
  DOMID_SELF,
  DOMID_XEN,
  HYPERCALL_CONSTANTS,
  MMUEXT_CONSTANTS,
  MMUEXT_COPY_PAGE,
  MMU_MACHPHYS_UPDATE,
  MMU_NORMAL_PT_UPDATE,
  MMU_PT_UPDATE_NO_TRANSLATE,
  UVMF_ALL,
  UVMF_INVLPG,
  UVMF_LOCAL,
  UVMF_TLB_FLUSH,
  __HYPERVISOR_memory_op,
  __HYPERVISOR_mmu_update,
  __HYPERVISOR_mmuext_op,
  decodeForeignDom,
  decodeUvmf,
  encodeForeignDom,
  hypercallName,
  machphysUpdate,
  makeMmuUpdatePtr,
  mmuUpdateCmd,
  mmuUpdateMaddr,
  mmu_update,
  mmuext_op,
  multicall_entry,
  normalPtUpdate,
  uvmfMulti,
} from '../../abi/xen.js';

describe('abi/xen: hypercall numbers', () => {
  it('lists 0..42 without the unassigned 11, plus arch_0..7 at 48..55, each number once', () => {
    const numbers = Object.values(HYPERCALL_CONSTANTS.values).map(Number).sort((a, b) => a - b);
    const expected = [...Array.from({ length: 43 }, (_, i) => i).filter((n) => n !== 11), 48, 49, 50, 51, 52, 53, 54, 55];
    expect(numbers).to.deep.equal(expected);
  });

  it('names the numbers the p2m work uses', () => {
    expect(hypercallName(__HYPERVISOR_mmu_update)).to.equal('mmu_update');
    expect(hypercallName(__HYPERVISOR_memory_op)).to.equal('memory_op');
    expect(hypercallName(__HYPERVISOR_mmuext_op)).to.equal('mmuext_op');
    expect(hypercallName(29)).to.equal('sched_op');
    expect(hypercallName(11)).to.equal('hypercall_11');
  });
});

describe('abi/xen: domain ids', () => {
  it('puts DOMID_SELF at the first reserved id and every special id at or above it', () => {
    expect(DOMID_SELF).to.equal(DOMID_FIRST_RESERVED);
    for (const [name, value] of Object.entries(DOMID_CONSTANTS.values)) {
      expect(Number(value), name).to.be.at.least(DOMID_FIRST_RESERVED);
    }
  });
});

describe('abi/xen: mmu_update requests', () => {
  it('packs and unpacks the command in ptr & 7', () => {
    const ptr = makeMmuUpdatePtr(0x12345678ff8n, MMU_PT_UPDATE_NO_TRANSLATE);
    expect(ptr).to.equal(0x12345678ffbn);
    expect(mmuUpdateCmd(ptr)).to.equal(MMU_PT_UPDATE_NO_TRANSLATE);
    expect(mmuUpdateMaddr(ptr)).to.equal(0x12345678ff8n);
  });

  it('decodes commands 4..7 so Xen can reject them, but refuses to build 8', () => {
    expect(mmuUpdateCmd(makeMmuUpdatePtr(0x1000n, 7))).to.equal(7);
    expect(() => makeMmuUpdatePtr(0x1000n, 8)).to.throw(AbiRangeError);
  });

  it('rejects a machine address that is not 8-byte aligned', () => {
    expect(() => makeMmuUpdatePtr(0x1004n, MMU_NORMAL_PT_UPDATE)).to.throw(AbiRangeError, /aligned/);
  });

  it('builds MMU_MACHPHYS_UPDATE as frame address | 1 with the pfn as val', () => {
    expect(machphysUpdate(0x1234n, 7n)).to.deep.equal({ ptr: 0x1234001n, val: 7n });
    expect(mmuUpdateCmd(machphysUpdate(0x1234n, 7n).ptr)).to.equal(MMU_MACHPHYS_UPDATE);
  });

  it('builds MMU_NORMAL_PT_UPDATE with the PTE address unchanged', () => {
    expect(normalPtUpdate(0xabc018n, 0x8000000001234067n)).to.deep.equal({ ptr: 0xabc018n, val: 0x8000000001234067n });
  });

  for (const abi of [X86_32, X86_64]) {
    it(`stores ptr and val as 64-bit little-endian words on ${abi.name}`, () => {
      const { bytes, view } = mmu_update.alloc(abi);
      view.ptr = 0x1122334455667701n;
      view.val = 0x8000000000000001n;
      expect(bytes.length).to.equal(16);
      expect(bytes.readBigUInt64LE(mmu_update.offsetOf(abi, 'ptr'))).to.equal(0x1122334455667701n);
      expect(bytes.readBigUInt64LE(mmu_update.offsetOf(abi, 'val'))).to.equal(0x8000000000000001n);
    });
  }
});

describe('abi/xen: foreigndom', () => {
  it('encodes FD in bits 15:0 and PFD + 1 in bits 31:16', () => {
    expect(encodeForeignDom(5, 3)).to.equal(0x40005);
    expect(encodeForeignDom(DOMID_IO, 0)).to.equal(0x17ff1);
  });

  it('encodes PFD = DOMID_SELF (or no PFD) as 0 in the high half', () => {
    expect(encodeForeignDom(DOMID_SELF)).to.equal(0x7ff0);
    expect(encodeForeignDom(DOMID_XEN, DOMID_SELF)).to.equal(0x7ff2);
  });

  it('decodes a zero high half as PFD = DOMID_SELF and x as PFD = x - 1', () => {
    expect(decodeForeignDom(0x7ff0)).to.deep.equal({ fd: DOMID_SELF, pfd: DOMID_SELF });
    expect(decodeForeignDom(0x40005)).to.deep.equal({ fd: 5, pfd: 3 });
    expect(decodeForeignDom(0xffff0001)).to.deep.equal({ fd: 1, pfd: 0xfffe });
  });

  it('rejects values that do not fit their fields', () => {
    expect(() => encodeForeignDom(0x10000)).to.throw(AbiRangeError);
    expect(() => encodeForeignDom(1, 0xffff)).to.throw(AbiRangeError);
    expect(() => decodeForeignDom(2 ** 32)).to.throw(AbiRangeError);
  });
});

describe('abi/xen: mmuext_op', () => {
  const cases = [
    { abi: X86_32, arg1: 4, arg2: 8, size: 12 },
    { abi: X86_64, arg1: 8, arg2: 16, size: 24 },
  ];
  for (const { abi, arg1, arg2, size } of cases) {
    it(`overlays arg1 and arg2 members at their union offsets on ${abi.name}`, () => {
      const { bytes, view } = mmuext_op.alloc(abi);
      expect(bytes.length).to.equal(size);
      view.cmd = MMUEXT_COPY_PAGE;
      view.arg1.mfn = 0xabcdn;
      view.arg2.src_mfn = 0x1234n;
      expect(mmuext_op.offsetOf(abi, 'arg1.linear_addr')).to.equal(arg1);
      expect(bytes.readUInt32LE(0)).to.equal(MMUEXT_COPY_PAGE);
      expect(bytes.readUInt32LE(arg1)).to.equal(0xabcd);
      expect(bytes.readUInt32LE(mmuext_op.offsetOf(abi, 'arg2.src_mfn'))).to.equal(0x1234);
      expect(view.arg1.linear_addr).to.equal(0xabcdn);
      expect(view.arg2.nr_ents).to.equal(0x1234);
      expect(view.arg2.vcpumask).to.equal(0x1234n);
      expect(mmuext_op.offsetOf(abi, 'arg2')).to.equal(arg2);
    });
  }

  it('rejects an MFN wider than a 32-bit guest word', () => {
    const { view } = mmuext_op.alloc(X86_32);
    expect(() => {
      view.arg1.mfn = 1n << 32n;
    }).to.throw(AbiRangeError);
    const wide = mmuext_op.alloc(X86_64);
    wide.view.arg1.mfn = 1n << 32n;
    expect(wide.bytes.readBigUInt64LE(8)).to.equal(1n << 32n);
  });

  it('numbers the commands 0..20 without 14', () => {
    const numbers = Object.values(MMUEXT_CONSTANTS.values).map(Number).sort((a, b) => a - b);
    expect(numbers).to.deep.equal([...Array.from({ length: 21 }, (_, i) => i).filter((n) => n !== 14)]);
  });
});

describe('abi/xen: update_va_mapping flags', () => {
  it('decodes local, all and a vCPU bitmap pointer', () => {
    expect(decodeUvmf(X86_64, UVMF_INVLPG | UVMF_LOCAL)).to.deep.equal({ flushType: UVMF_INVLPG, target: 'local', vcpumask: null });
    expect(decodeUvmf(X86_64, UVMF_TLB_FLUSH | UVMF_ALL)).to.deep.equal({ flushType: UVMF_TLB_FLUSH, target: 'all', vcpumask: null });
    expect(decodeUvmf(X86_32, 0xc0001000n | UVMF_INVLPG)).to.deep.equal({ flushType: UVMF_INVLPG, target: 'multi', vcpumask: 0xc0001000n });
  });

  it('round-trips a bitmap pointer and refuses one whose low bits are set', () => {
    const flags = uvmfMulti(X86_64, UVMF_TLB_FLUSH, 0xffffc90000001238n);
    expect(decodeUvmf(X86_64, flags).vcpumask).to.equal(0xffffc90000001238n);
    expect(() => uvmfMulti(X86_64, UVMF_TLB_FLUSH, 0xffffc90000001232n)).to.throw(AbiRangeError);
    expect(() => uvmfMulti(X86_64, UVMF_TLB_FLUSH, UVMF_ALL)).to.throw(AbiRangeError);
  });

  it('rejects a flags word wider than the guest word', () => {
    expect(() => decodeUvmf(X86_32, 1n << 32n)).to.throw(AbiRangeError);
  });
});

describe('abi/xen: multicall_entry', () => {
  for (const abi of [X86_32, X86_64]) {
    it(`places args[i] at args + i words and keeps a -errno result as an unsigned word on ${abi.name}`, () => {
      const { bytes, view } = multicall_entry.alloc(abi);
      expect(bytes.length).to.equal(8 * abi.wordSize);
      view.op = BigInt(__HYPERVISOR_mmu_update);
      view.args.set(5, 0x7ff0n);
      const at = multicall_entry.offsetOf(abi, 'args') + 5 * abi.wordSize;
      expect(abi.wordSize === 8 ? bytes.readBigUInt64LE(at) : BigInt(bytes.readUInt32LE(at))).to.equal(0x7ff0n);
      view.result = wordMask(abi) - 21n; // -EINVAL (22) at guest width
      expect(view.result).to.equal(wordMask(abi) + 1n - 22n);
      expect(() => {
        view.result = wordMask(abi) + 1n;
      }).to.throw(AbiRangeError);
    });
  }
});
