/**
 * check-kernel on objects built here: gcc -g -c of a file that includes Xen's public headers (as
 * installed, renamed the way Linux names things, or deliberately broken), then pahole -J for the
 * .BTF section. And on the running kernel's BTF, which has no Xen structs.
 */

import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ABI_STRUCTS } from '../../../abi/index.js';
import { X86_32, X86_64, type GuestAbi } from '../../../abi/guest-abi.js';
import { checkKernelFile, type KernelCheckReport, type StructReport } from '../../../abi/check/index.js';
import { all, gccWithXenHeaders, paholeInstalled, requireOracle } from '../../support/oracle.js';
import { buildBtfObject, makeHeaderVariant, type VariantName } from '../../support/xen-fixtures.js';

function struct(report: KernelCheckReport, name: string): StructReport {
  const s = report.structs.find((r) => r.name === name);
  if (!s) return expect.fail(`no report for ${name}`);
  return s;
}

/** Names of the structs with each status other than identical. */
function notIdentical(report: KernelCheckReport): Record<string, string> {
  return Object.fromEntries(report.structs.filter((s) => s.status !== 'identical').map((s) => [s.name, s.status]));
}

describe('check-kernel on BTF fixtures built with gcc and pahole', function () {
  this.timeout(120_000);
  let dir: string;
  const objects = new Map<string, string>();
  const check = (variant: VariantName, abi: GuestAbi): KernelCheckReport => checkKernelFile(objects.get(`${variant}/${abi.name}`)!);

  before(function () {
    requireOracle(this, all(gccWithXenHeaders, paholeInstalled));
    dir = mkdtempSync(join(tmpdir(), 'xenabi-check-kernel-'));
    for (const variant of ['xen', 'linux-names', 'unknown-rename', 'moved', 'p2m-generation-32', 'removed', 'other-kind'] as const) {
      const include = makeHeaderVariant(dir, variant);
      for (const abi of [X86_32, X86_64]) objects.set(`${variant}/${abi.name}`, buildBtfObject(dir, include, abi, variant));
    }
  });
  after(function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const abi of [X86_64, X86_32]) {
    it(`Xen's own headers (${abi.name}, from the ELF class): every struct identical, exit 0`, function () {
      const r = check('xen', abi);
      expect(r.abi).to.equal(abi.name);
      expect(r.abiFrom).to.equal('ELF class');
      expect(r.container).to.deep.equal([abi.name === 'x86_64' ? 'ELF64 x86-64 .BTF' : 'ELF32 i386 .BTF']);
      expect(notIdentical(r)).to.deep.equal({});
      expect(r.summary.identical).to.equal(ABI_STRUCTS.length);
      expect(r.exitCode).to.equal(0);
    });
  }

  it('--arch overrides the ELF class: a 64-bit object checked as x86_32 is incompatible', function () {
    const r = checkKernelFile(objects.get('xen/x86_64')!, { arch: 'x86_32' });
    expect(r.abiFrom).to.equal('option');
    expect(struct(r, 'shared_info').status).to.equal('incompatible');
    expect(struct(r, 'shared_info').failures).to.include('Fail: sizeof(shared_info) (x86_32), expected 2344, got 3136');
    expect(r.exitCode).to.equal(1);
  });

  for (const abi of [X86_64, X86_32]) {
    it(`Linux's names (${abi.name}): compatible, with the renames listed`, function () {
      const r = check('linux-names', abi);
      expect(notIdentical(r)).to.deep.equal({
        vcpu_time_info: 'compatible',
        vcpu_info: 'compatible',
        shared_info: 'compatible',
        xen_memory_reservation: 'compatible',
        xen_memory_exchange: 'compatible',
      });
      const vti = struct(r, 'vcpu_time_info');
      expect(vti.foundAs).to.equal('struct pvclock_vcpu_time_info');
      expect(vti.renames).to.deep.equal([
        { from: 'struct vcpu_time_info', to: 'struct pvclock_vcpu_time_info', guest: 'Linux' },
        { from: 'pad1', to: 'pad', guest: 'Linux' },
      ]);
      expect(struct(r, 'shared_info').renames).to.deep.equal([
        { from: 'vcpu_info[0].time.pad1', to: 'vcpu_info[0].time.pad', guest: 'Linux' },
        { from: 'wc_version', to: 'wc.version', guest: 'Linux' },
        { from: 'wc_sec', to: 'wc.sec', guest: 'Linux' },
        { from: 'wc_nsec', to: 'wc.nsec', guest: 'Linux' },
      ]);
      expect(struct(r, 'xen_memory_reservation').renames).to.deep.equal([{ from: 'mem_flags', to: 'address_bits', guest: 'Linux' }]);
      expect(r.exitCode).to.equal(0);
    });
  }

  it('a rename no table knows is found by its bytes: compatible', function () {
    const r = check('unknown-rename', X86_64);
    expect(struct(r, 'xen_memory_reservation').status).to.equal('compatible');
    expect(struct(r, 'xen_memory_reservation').renames).to.deep.equal([{ from: 'mem_flags', to: 'xenmem_flags' }]);
  });

  for (const abi of [X86_64, X86_32]) {
    it(`a field moved (${abi.name}): incompatible at p2m_cr3 and p2m_vaddr, with both offsets and sizes`, function () {
      const w = abi.wordSize;
      const r = check('moved', abi);
      expect(notIdentical(r)).to.deep.equal({ arch_shared_info: 'incompatible', shared_info: 'incompatible' });
      const ash = struct(r, 'arch_shared_info');
      expect(ash.problems.map((p) => [p.field, p.problem, p.expected.offset, p.got?.offset, p.expected.size, p.got?.size])).to.deep.equal([
        ['p2m_cr3', 'moved', 3 * w, 4 * w, w, w],
        ['p2m_vaddr', 'moved', 4 * w, 3 * w, w, w],
      ]);
      expect(ash.problems[0]!.message).to.equal(
        `Fail: arch_shared_info.p2m_cr3 moved (${abi.name}), expected ${w} bytes at 0x${(3 * w).toString(16)}, got ${w} bytes at 0x${(4 * w).toString(16)}`,
      );
      expect(struct(r, 'shared_info').problems.map((p) => p.field)).to.deep.equal(['arch.p2m_cr3', 'arch.p2m_vaddr']);
      expect(r.exitCode).to.equal(1);
    });
  }

  it('p2m_generation shrunk to 32 bits: incompatible on x86_64 at p2m_generation, identical on x86_32', function () {
    const r = check('p2m-generation-32', X86_64);
    const ash = struct(r, 'arch_shared_info');
    expect(ash.status).to.equal('incompatible');
    expect(ash.problems).to.have.length(1);
    expect(ash.problems[0]).to.deep.include({ field: 'p2m_generation', problem: 'resized' });
    expect(ash.problems[0]!.message).to.equal('Fail: arch_shared_info.p2m_generation resized (x86_64), expected 8 bytes at 0x28, got 4 bytes at 0x28');
    expect(struct(r, 'shared_info').problems[0]!.message).to.equal('Fail: shared_info.arch.p2m_generation resized (x86_64), expected 8 bytes at 0xc38, got 4 bytes at 0xc38');
    expect(r.exitCode).to.equal(1);
    const r32 = check('p2m-generation-32', X86_32);
    expect(notIdentical(r32)).to.deep.equal({});
    expect(r32.exitCode).to.equal(0);
  });

  it('a field removed: nmi_reason missing, the fields after it moved, the struct resized', function () {
    const r = check('removed', X86_64);
    const ash = struct(r, 'arch_shared_info');
    expect(ash.status).to.equal('incompatible');
    expect(ash.failures).to.deep.equal(['Fail: sizeof(arch_shared_info) (x86_64), expected 48, got 40']);
    expect(ash.problems.map((p) => `${p.field} ${p.problem}`)).to.deep.equal([
      'nmi_reason missing',
      'p2m_cr3 moved',
      'p2m_vaddr moved',
      'p2m_generation moved',
    ]);
    expect(ash.problems[0]!.message).to.equal('Fail: arch_shared_info.nmi_reason missing (x86_64), expected unsigned long (8 bytes at 0x10), got no such field');
    expect(ash.problems[0]!.got).to.equal(undefined);
  });

  it('a field of another kind: grant_entry_v1.frame as uint16_t[2]', function () {
    const r = check('other-kind', X86_64);
    const g = struct(r, 'grant_entry_v1');
    expect(g.status).to.equal('incompatible');
    expect(g.problems.map((p) => `${p.field} ${p.problem}`)).to.deep.equal(['frame other kind']);
    expect(g.problems[0]!.message).to.equal(
      'Fail: grant_entry_v1.frame of another kind (x86_64), expected uint32_t, an integer (4 bytes at 0x4), got uint16_t[2], an array (4 bytes at 0x4)',
    );
  });
});

describe('check-kernel on the running kernel\'s BTF', function () {
  this.timeout(60_000);
  const VMLINUX = '/sys/kernel/btf/vmlinux';

  it('finds no Xen struct: every ABI struct is not present, exit 0', function () {
    if (!existsSync(VMLINUX)) {
      if (process.env.CI === 'true') throw new Error(`${VMLINUX} is missing in CI`);
      console.log(`      skipped: ${VMLINUX} is absent (kernel without CONFIG_DEBUG_INFO_BTF)`);
      this.skip();
    }
    const r = checkKernelFile(VMLINUX);
    expect(r.container).to.deep.equal(['raw BTF']);
    expect(r.abiFrom).to.equal('size of long in the BTF');
    expect(r.btf.types).to.be.greaterThan(10_000);
    expect(r.structs.map((s) => s.status)).to.deep.equal(ABI_STRUCTS.map(() => 'not present'));
    expect(r.summary['not present']).to.equal(ABI_STRUCTS.length);
    expect(r.exitCode).to.equal(0);
  });
});
