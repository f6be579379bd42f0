/**
 * `xenabi layout --format c`: a header of _Static_asserts, guarded per bitness, that compiles against
 * Xen's real public headers with gcc -m32 and -m64, and stops the compile when a layout is wrong.
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ABI_STRUCTS } from '../../../abi/index.js';
import { GUEST_ABIS, X86_64 } from '../../../abi/guest-abi.js';
import { XEN_INTERFACE_VERSION } from '../../../abi/probe.js';
import { C_HEADER_FILE, layoutDocFiles, renderCHeader } from '../../../abi/doc/index.js';
import { gccWithXenHeaders, requireOracle } from '../../support/oracle.js';
import { makeHeaderVariant } from '../../support/xen-fixtures.js';

const all = { structs: ABI_STRUCTS, abis: GUEST_ABIS };

describe('layout as a C header of _Static_asserts', function () {
  it('asserts sizeof every struct and offsetof/sizeof every field, dotted members included, per bitness', function () {
    const h = renderCHeader(all);
    expect(h.indexOf('#if defined(__x86_64__)')).to.be.lessThan(h.indexOf('#elif defined(__i386__)'));
    expect(h).to.match(/#else\n#error "xenabi layout asserts: this header covers x86_64 \(__x86_64__\) and x86_32 \(__i386__\) only"\n#endif/);
    for (const abi of GUEST_ABIS) {
      for (const s of ABI_STRUCTS) {
        const l = s.layout(abi);
        expect(h).to.contain(`_Static_assert(sizeof(XENABI_T_${s.name}) == ${l.size}, "xenabi: sizeof(${s.kind} ${s.name}) must be ${l.size} on ${abi.name}");`);
        for (const f of l.all) {
          expect(h).to.contain(`_Static_assert(offsetof(XENABI_T_${s.name}, ${f.path}) == 0x${f.offset.toString(16)},`);
          expect(h).to.contain(`_Static_assert(sizeof(((XENABI_T_${s.name} *)0)->${f.path}) == ${f.size},`);
        }
      }
    }
    expect(h).to.contain('offsetof(XENABI_T_start_info, console.domU.evtchn) == 0x50');
  });

  it('--out writes it as one file', function () {
    expect(layoutDocFiles('c', all).map((f) => f.name)).to.deep.equal([C_HEADER_FILE]);
  });

  describe('compiled against Xen\'s public headers', function () {
    this.timeout(60_000);
    let dir: string;
    before(function () {
      requireOracle(this, gccWithXenHeaders);
      dir = mkdtempSync(join(tmpdir(), 'xenabi-c-header-'));
    });
    after(function () {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    function compile(header: string, flag: string, extra: string[] = [], include?: string): { ok: boolean; stderr: string } {
      writeFileSync(join(dir, C_HEADER_FILE), header);
      const src = join(dir, 'use.c');
      writeFileSync(src, `#include <stdint.h>\n#include <xen/xen.h>\n#include <xen/memory.h>\n#include <xen/grant_table.h>\n#include "${C_HEADER_FILE}"\n`);
      const r = spawnSync(
        process.env.CC ?? 'gcc',
        [flag, '-std=gnu11', '-fsyntax-only', `-D__XEN_INTERFACE_VERSION__=${XEN_INTERFACE_VERSION}`, ...(include ? [`-I${include}`] : []), ...extra, src],
        { encoding: 'utf8' },
      );
      return { ok: r.status === 0, stderr: r.stderr };
    }

    for (const flag of ['-m32', '-m64']) {
      it(`compiles with gcc ${flag}`, function () {
        const r = compile(renderCHeader(all), flag);
        expect(r.stderr).to.equal('');
        expect(r.ok).to.equal(true);
      });
    }

    it('a deliberately wrong assert fails to compile, with its message', function () {
      const wrong = renderCHeader(all).replace('sizeof(XENABI_T_shared_info) == 3136', 'sizeof(XENABI_T_shared_info) == 3144');
      const r = compile(wrong, '-m64');
      expect(r.ok).to.equal(false);
      expect(r.stderr).to.contain('xenabi: sizeof(struct shared_info) must be 3136 on x86_64');
      expect(compile(wrong, '-m32').ok, 'the x86_32 branch does not see the x86_64 assert').to.equal(true);
    });

    it('an x86_64-only header stops an i386 build with #error', function () {
      const r = compile(renderCHeader({ structs: ABI_STRUCTS, abis: [X86_64] }), '-m32');
      expect(r.ok).to.equal(false);
      expect(r.stderr).to.contain('this header covers x86_64 (__x86_64__) only');
    });

    it('fails on a layout that drifted; XENABI_SKIP_<struct> leaves out what a guest names differently', function () {
      const broken = makeHeaderVariant(dir, 'p2m-generation-32');
      const drift = compile(renderCHeader(all), '-m64', [], broken);
      expect(drift.ok).to.equal(false);
      expect(drift.stderr).to.contain('xenabi: sizeof(struct arch_shared_info.p2m_generation) must be 8 on x86_64');
      const linux = makeHeaderVariant(dir, 'linux-names');
      expect(compile(renderCHeader(all), '-m64', [], linux).ok).to.equal(false);
      const skips = ['vcpu_time_info', 'vcpu_info', 'shared_info', 'xen_memory_reservation', 'xen_memory_exchange'].map((s) => `-DXENABI_SKIP_${s}`);
      const adapted = compile(renderCHeader(all), '-m64', skips, linux);
      expect(adapted.stderr).to.equal('');
      expect(adapted.ok).to.equal(true);
    });

    it('XENABI_T_<struct> replaces the type a struct is checked as', function () {
      const r = compile(renderCHeader(all), '-m64', ['-DXENABI_T_mmu_update=struct no_such_struct']);
      expect(r.ok).to.equal(false);
      expect(r.stderr).to.contain('struct no_such_struct');
    });
  });
});
