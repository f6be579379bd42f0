/**
 * check-headers: a probe of every struct and field the kit defines, compiled with gcc -m32 and -m64
 * against Xen's public headers (as installed, renamed as Linux names things, deliberately broken),
 * classified like check-kernel. A missing compiler or headers that do not compile are ProbeErrors.
 */

import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ABI_STRUCTS } from '../../../abi/index.js';
import { X86_32, X86_64 } from '../../../abi/guest-abi.js';
import { ProbeError } from '../../../abi/probe.js';
import { checkHeaders, checkHeadersAbi, type StructReport } from '../../../abi/check/index.js';
import { gccWithXenHeaders, requireOracle } from '../../support/oracle.js';
import { makeHeaderVariant, type VariantName } from '../../support/xen-fixtures.js';

function byName(reports: readonly StructReport[], name: string): StructReport {
  const s = reports.find((r) => r.name === name);
  if (!s) return expect.fail(`no report for ${name}`);
  return s;
}

function notIdentical(reports: readonly StructReport[]): Record<string, string> {
  return Object.fromEntries(reports.filter((s) => s.status !== 'identical').map((s) => [s.name, s.status]));
}

describe('check-headers through gcc -m32 and -m64', function () {
  this.timeout(120_000);
  let dir: string;
  const includes = new Map<VariantName, string>();

  before(function () {
    requireOracle(this, gccWithXenHeaders);
    dir = mkdtempSync(join(tmpdir(), 'xenabi-check-headers-'));
    for (const v of ['linux-names', 'unknown-rename', 'moved', 'p2m-generation-32', 'removed', 'other-kind'] as const) {
      includes.set(v, makeHeaderVariant(dir, v));
    }
  });
  after(function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('Xen\'s installed headers: every struct identical on both ABIs, exit 0', function () {
    const r = checkHeaders();
    expect(r.abis.map((a) => a.abi)).to.deep.equal(['x86_32', 'x86_64']);
    for (const a of r.abis) {
      expect(notIdentical(a.structs), a.abi).to.deep.equal({});
      expect(a.summary.identical).to.equal(ABI_STRUCTS.length);
    }
    expect(r.compiler).to.match(/gcc/);
    expect(r.exitCode).to.equal(0);
  });

  for (const abi of [X86_32, X86_64]) {
    it(`Linux's names (${abi.name}): compatible, with the renames listed`, function () {
      const reports = checkHeadersAbi(abi, { includeDirs: [includes.get('linux-names')!] });
      expect(notIdentical(reports)).to.deep.equal({
        vcpu_time_info: 'compatible',
        vcpu_info: 'compatible',
        shared_info: 'compatible',
        xen_memory_reservation: 'compatible',
        xen_memory_exchange: 'compatible',
      });
      expect(byName(reports, 'vcpu_time_info').foundAs).to.equal('struct pvclock_vcpu_time_info');
      expect(byName(reports, 'vcpu_time_info').renames.map((x) => `${x.from} → ${x.to}`)).to.deep.equal([
        'struct vcpu_time_info → struct pvclock_vcpu_time_info',
        'pad1 → pad',
      ]);
      expect(byName(reports, 'shared_info').renames.map((x) => `${x.from} → ${x.to}`)).to.deep.equal([
        'vcpu_info[0].time.pad1 → vcpu_info[0].time.pad',
        'wc_version → wc.version',
        'wc_sec → wc.sec',
        'wc_nsec → wc.nsec',
      ]);
      expect(byName(reports, 'xen_memory_reservation').renames).to.deep.equal([{ from: 'mem_flags', to: 'address_bits', guest: 'Linux' }]);
    });
  }

  it('a rename no table knows cannot be seen through a compiler: the field is missing', function () {
    const r = byName(checkHeadersAbi(X86_64, { includeDirs: [includes.get('unknown-rename')!] }), 'xen_memory_reservation');
    expect(r.status).to.equal('incompatible');
    expect(r.problems.map((p) => `${p.field} ${p.problem}`)).to.deep.equal(['mem_flags missing']);
  });

  it('a field moved: incompatible at p2m_cr3 and p2m_vaddr with both offsets', function () {
    const reports = checkHeadersAbi(X86_64, { includeDirs: [includes.get('moved')!] });
    expect(notIdentical(reports)).to.deep.equal({ arch_shared_info: 'incompatible', shared_info: 'incompatible' });
    expect(byName(reports, 'arch_shared_info').problems.map((p) => p.message)).to.deep.equal([
      'Fail: arch_shared_info.p2m_cr3 moved (x86_64), expected 8 bytes at 0x18, got 8 bytes at 0x20',
      'Fail: arch_shared_info.p2m_vaddr moved (x86_64), expected 8 bytes at 0x20, got 8 bytes at 0x18',
    ]);
  });

  it('p2m_generation shrunk to 32 bits: incompatible on x86_64 only, and the whole run exits 1', function () {
    const r = checkHeaders({ includeDirs: [includes.get('p2m-generation-32')!] });
    const [a32, a64] = r.abis;
    expect(notIdentical(a32!.structs)).to.deep.equal({});
    expect(byName(a64!.structs, 'arch_shared_info').problems.map((p) => p.message)).to.deep.equal([
      'Fail: arch_shared_info.p2m_generation resized (x86_64), expected 8 bytes at 0x28, got 4 bytes at 0x28',
    ]);
    expect(r.exitCode).to.equal(1);
  });

  it('a field removed: nmi_reason missing, sizeof wrong', function () {
    const r = byName(checkHeadersAbi(X86_32, { includeDirs: [includes.get('removed')!] }), 'arch_shared_info');
    expect(r.failures).to.deep.equal(['Fail: sizeof(arch_shared_info) (x86_32), expected 28, got 24']);
    expect(r.problems.map((p) => `${p.field} ${p.problem}`)).to.deep.equal(['nmi_reason missing', 'p2m_cr3 moved', 'p2m_vaddr moved', 'p2m_generation moved', 'wc_sec_hi moved']);
  });

  it('a field of another kind: grant_entry_v1.frame as an array', function () {
    const r = byName(checkHeadersAbi(X86_64, { includeDirs: [includes.get('other-kind')!] }), 'grant_entry_v1');
    expect(r.problems.map((p) => `${p.field} ${p.problem}`)).to.deep.equal(['frame other kind']);
    expect(r.problems[0]!.message).to.equal(
      'Fail: grant_entry_v1.frame of another kind (x86_64), expected uint32_t, an integer (4 bytes at 0x4), got a pointer or array (4 bytes at 0x4)',
    );
  });

  it('headers that lack every struct: each is not present', function () {
    const empty = join(dir, 'empty');
    mkdirSync(join(empty, 'xen'), { recursive: true });
    for (const h of ['xen.h', 'memory.h', 'grant_table.h']) writeFileSync(join(empty, 'xen', h), '/* nothing */\n');
    const reports = checkHeadersAbi(X86_64, { includeDirs: [empty] });
    expect(reports.map((s) => s.status)).to.deep.equal(ABI_STRUCTS.map(() => 'not present'));
    expect(byName(reports, 'shared_info').notes[0]).to.match(/^none of struct shared_info, union shared_info, shared_info_t is declared/);
  });

  it('headers that do not compile: a one-line ProbeError', function () {
    const broken = join(dir, 'broken');
    mkdirSync(join(broken, 'xen'), { recursive: true });
    writeFileSync(join(broken, 'xen', 'xen.h'), 'struct shared_info { int a; \n');
    try {
      checkHeadersAbi(X86_64, { includeDirs: [broken] });
      expect.fail('broken headers compiled');
    } catch (e) {
      expect(e).to.be.instanceOf(ProbeError);
      expect((e as ProbeError).reason).to.equal('compile');
      expect((e as Error).message).to.match(/^probe for x86_64 does not compile: /);
      expect((e as Error).message).not.to.contain('\n');
    }
  });
});

describe('check-headers without a compiler', function () {
  it('names the Debian packages to install', function () {
    try {
      checkHeaders({ cc: '/nonexistent/cc' });
      expect.fail('ran without a compiler');
    } catch (e) {
      expect(e).to.be.instanceOf(ProbeError);
      expect((e as ProbeError).reason).to.equal('no-compiler');
      expect((e as Error).message).to.match(/install Debian packages: gcc gcc-multilib libxen-dev$/);
    }
  });
});
