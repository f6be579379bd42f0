/**
 * abi/vcpu.ts: cpu_user_regs, trap_info and vcpu_guest_context (the X86_PV_VCPU_BASIC blob).
 * Every offset and size is already held against gcc by oracle.test.ts; here: the sizes the
 * migration stream depends on, the paths the toolstack rewrites (array elements included, checked
 * against a live compile where gcc and the Xen headers exist), and round trips through the views.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import {
  AbiViewError,
  GUEST_ABIS,
  PROBE_PACKAGES,
  START_INFO_REG_PATH,
  VGCF_CONSTANTS,
  VGCF_IN_KERNEL,
  VGCF_IN_SYSCALL,
  VGCF_I387_VALID,
  VGCF_X86_64_CONSTANTS,
  VGCF_in_kernel,
  VGCF_in_syscall,
  VGCF_i387_valid,
  VGCF_online,
  X86_32,
  X86_64,
  compileFailure,
  compilerVersion,
  cpu_user_regs,
  probeCompileArgs,
  trap_info,
  vcpuContextOffsets,
  vcpu_guest_context,
  xen_pfn_to_cr3,
  type GuestAbi,
} from '../../abi/index.js';
import { VCPU_GUEST_CONTEXT_SIZE } from '../../toolstack/stream/x86-pv-vcpu.js';
import { readOracleFixture } from './oracle-fixture.js';

const fixture = readOracleFixture();

const readWord = (bytes: Buffer, at: number, abi: GuestAbi): bigint =>
  abi.wordSize === 8 ? bytes.readBigUInt64LE(at) : BigInt(bytes.readUInt32LE(at));

/** The offsets the toolstack needs, as gcc -m32 / -m64 reported them for Xen 4.17's headers. */
const TOOLSTACK_OFFSETS = {
  x86_32: { flags: 512, startInfoReg: 524, gdt_frames: 2640, gdt_ents: 2704, kernel_ss: 2708, kernel_sp: 2712, ctrlreg: 2716, cr1: 2720, cr3: 2728 },
  x86_64: { flags: 512, startInfoReg: 616, gdt_frames: 4832, gdt_ents: 4960, kernel_ss: 4968, kernel_sp: 4976, ctrlreg: 4984, cr1: 4992, cr3: 5008 },
} as const;

/** Paths whose offsets a live compile checks: nested members and array elements. */
function probedPaths(abi: GuestAbi): string[] {
  return [
    START_INFO_REG_PATH[abi.name],
    abi.name === 'x86_64' ? 'user_regs.rsp' : 'user_regs.esp',
    'user_regs.cs',
    'user_regs.gs',
    'ctrlreg[1]',
    'ctrlreg[3]',
    'ctrlreg[7]',
    'debugreg[7]',
    'gdt_frames[0]',
    'gdt_frames[15]',
    'trap_ctxt[14]',
    'trap_ctxt[14].address',
    'trap_ctxt[255].cs',
    'fpu_ctxt.x[511]',
  ];
}

/** offsetof() of each path, from gcc compiling Xen's headers for `abi`; undefined without the oracle. */
function liveOffsets(abi: GuestAbi, paths: readonly string[]): number[] | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'xenabi-vcpu-test-'));
  try {
    const source = join(dir, 'probe.c');
    const binary = join(dir, 'probe');
    writeFileSync(
      source,
      [
        '#include <stdio.h>',
        '#include <stddef.h>',
        '#include <stdint.h>',
        '#include <xen/xen.h>',
        'int main(void)',
        '{',
        ...paths.map((p) => `    printf("%zu\\n", offsetof(struct vcpu_guest_context, ${p}));`),
        '    return 0;',
        '}',
        '',
      ].join('\n'),
    );
    const cc = process.env.CC ?? 'gcc';
    const built = spawnSync(cc, [...probeCompileArgs(abi), source, '-o', binary], { encoding: 'utf8' });
    if (built.error) return undefined;
    if (built.status !== 0) {
      const failure = compileFailure(cc, abi, built.stderr);
      if (failure.reason === 'compile') throw failure;
      return undefined; // no Xen headers or no multilib here
    }
    const ran = spawnSync(binary, [], { encoding: 'utf8' });
    if (ran.status !== 0) throw new Error(`probe failed: ${ran.stderr}`);
    return ran.stdout.trim().split('\n').map(Number);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * offsetof/sizeof of `cpu_user_regs` members by name, compiled with `defines`; names the headers
 * do not declare in that build are dropped (their lines fail to compile). Undefined without gcc.
 */
function liveMembers(abi: GuestAbi, names: readonly string[], defines: readonly string[]): Map<string, [number, number]> | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'xenabi-vcpu-test-'));
  try {
    const source = join(dir, 'probe.c');
    const binary = join(dir, 'probe');
    const cc = process.env.CC ?? 'gcc';
    let live = [...names];
    for (let round = 0; round < 3; round++) {
      const head = ['#include <stdio.h>', '#include <stddef.h>', '#include <stdint.h>', '#include <xen/xen.h>', 'int main(void)', '{'];
      const lines = [
        ...head,
        ...live.map((n) => `    printf("${n} %zu %zu\\n", offsetof(struct cpu_user_regs, ${n}), sizeof(((struct cpu_user_regs *)0)->${n}));`),
        '    return 0;',
        '}',
        '',
      ];
      writeFileSync(source, lines.join('\n'));
      const built = spawnSync(cc, [...probeCompileArgs(abi, defines), '-fmax-errors=0', source, '-o', binary], { encoding: 'utf8' });
      if (built.error) return undefined;
      if (built.status === 0) {
        const ran = spawnSync(binary, [], { encoding: 'utf8' });
        if (ran.status !== 0) throw new Error(`probe failed: ${ran.stderr}`);
        return new Map(
          ran.stdout
            .trim()
            .split('\n')
            .map((l) => l.split(' '))
            .map(([n, o, z]) => [n!, [Number(o), Number(z)]] as [string, [number, number]]),
        );
      }
      const bad = new Set<number>();
      for (const m of built.stderr.matchAll(/probe\.c:(\d+):\d+: error:/g)) bad.add(Number(m[1]) - head.length - 1);
      if (bad.size === 0) {
        const failure = compileFailure(cc, abi, built.stderr);
        if (failure.reason === 'compile') throw failure;
        return undefined;
      }
      live = live.filter((_, i) => !bad.has(i));
    }
    throw new Error('alias probe did not converge');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('abi/vcpu: vcpu_guest_context', function () {
  describe('sizes', function () {
    it('is 2800 bytes on x86_32 and 5168 on x86_64, as the compiler says and the BASIC record needs', function () {
      expect(vcpu_guest_context.sizeOf(X86_32)).to.equal(2800);
      expect(vcpu_guest_context.sizeOf(X86_64)).to.equal(5168);
      for (const abi of GUEST_ABIS) {
        expect(vcpu_guest_context.sizeOf(abi)).to.equal(fixture.abis[abi.name].structs['vcpu_guest_context']!.size);
        expect(vcpu_guest_context.typedStruct(abi).baseSize).to.equal(vcpu_guest_context.sizeOf(abi));
      }
      expect(VCPU_GUEST_CONTEXT_SIZE).to.deep.equal({ x86_32: 2800, x86_64: 5168 });
    });

    it('cpu_user_regs is 68 / 200 bytes and trap_info 8 / 16; trap_ctxt holds 256 of them', function () {
      expect([cpu_user_regs.sizeOf(X86_32), cpu_user_regs.sizeOf(X86_64)]).to.deep.equal([68, 200]);
      expect([trap_info.sizeOf(X86_32), trap_info.sizeOf(X86_64)]).to.deep.equal([8, 16]);
      for (const abi of GUEST_ABIS) {
        const t = vcpu_guest_context.layout(abi).all.find((f) => f.path === 'trap_ctxt')!;
        expect(t.size).to.equal(256 * trap_info.sizeOf(abi));
        expect(t.cType).to.equal('struct trap_info[256]');
      }
    });

    it('declares each ABI\'s register names and only those', function () {
      const names = (abi: GuestAbi) => cpu_user_regs.layout(abi).fields.map((f) => f.name);
      expect(names(X86_64).slice(0, 15)).to.deep.equal(
        ['r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi', 'rdi'],
      );
      expect(names(X86_32).slice(0, 7)).to.deep.equal(['ebx', 'ecx', 'edx', 'esi', 'edi', 'ebp', 'eax']);
      expect(names(X86_64)).not.to.include.members(['eax', 'eip']);
      expect(names(X86_32)).not.to.include.members(['rax', 'rip']);
      const ctx = (abi: GuestAbi) => vcpu_guest_context.layout(abi).fields.map((f) => f.name);
      expect(ctx(X86_64)).to.include.members(['syscall_callback_eip', 'fs_base', 'gs_base_kernel', 'gs_base_user']);
      expect(ctx(X86_64)).not.to.include('event_callback_cs');
      expect(ctx(X86_32)).to.include.members(['event_callback_cs', 'failsafe_callback_cs']);
      expect(ctx(X86_32)).not.to.include.members(['syscall_callback_eip', 'fs_base']);
    });
  });

  for (const abi of GUEST_ABIS) {
    describe(abi.name, function () {
      it('gives the toolstack its offsets by path, element paths included', function () {
        const offsets = vcpuContextOffsets(abi);
        expect(offsets).to.deep.equal(TOOLSTACK_OFFSETS[abi.name]);
        expect(offsets.cr3).to.equal(offsets.ctrlreg + 3 * abi.wordSize);
        expect(vcpu_guest_context.offsetOf(abi, 'gdt_frames[15]')).to.equal(offsets.gdt_frames + 15 * abi.wordSize);
        // Nested paths agree with the committed compiler figures, struct by struct.
        const compiled = fixture.abis[abi.name].structs;
        const regs = START_INFO_REG_PATH[abi.name].split('.')[1]!;
        expect(offsets.startInfoReg).to.equal(
          compiled['vcpu_guest_context']!.fields['user_regs']![0] + compiled['cpu_user_regs']!.fields[regs]![0],
        );
        for (const name of ['flags', 'gdt_frames', 'gdt_ents', 'kernel_ss', 'kernel_sp', 'ctrlreg'] as const) {
          expect(offsets[name], name).to.equal(compiled['vcpu_guest_context']!.fields[name]![0]);
        }
        expect(() => vcpu_guest_context.offsetOf(abi, 'ctrlreg[8]')).to.throw(AbiViewError);
      });

      it('element and nested offsets match gcc compiling Xen\'s headers (live)', function () {
        let live: number[] | undefined;
        if (compilerVersion()) live = liveOffsets(abi, probedPaths(abi));
        if (!live) {
          if (process.env.CI === 'true') throw new Error(`oracle unavailable in CI; install ${PROBE_PACKAGES}`);
          this.skip();
        }
        const ours = probedPaths(abi).map((p) => vcpu_guest_context.offsetOf(abi, p));
        expect(ours).to.deep.equal(live);
      });

      it('every declared register alias exists in some build of the headers and lies within its field (live)', function () {
        if (!compilerVersion()) {
          if (process.env.CI === 'true') throw new Error(`oracle unavailable in CI; install ${PROBE_PACKAGES}`);
          this.skip();
        }
        const fields = cpu_user_regs.layout(abi).fields;
        const aliases = fields.flatMap((f) => (f.aliases ?? []).map((a) => [a, f] as const));
        expect(aliases.length).to.be.greaterThan(0);
        const names = [...fields.map((f) => f.name), ...aliases.map(([a]) => a)];
        const seen = new Set<string>();
        for (const defines of [[], ['__XEN_TOOLS__']]) {
          const live = liveMembers(abi, names, defines);
          if (!live) {
            if (process.env.CI === 'true') throw new Error(`oracle unavailable in CI; install ${PROBE_PACKAGES}`);
            this.skip();
          }
          // The kit's own names compile in every build, where it says.
          for (const f of fields) expect(live.get(f.name), `${f.name} with [${defines.join(' ')}]`).to.deep.equal([f.offset, f.size]);
          for (const [a, f] of aliases) {
            const got = live.get(a);
            if (!got) continue;
            seen.add(a);
            expect(got[0], a).to.be.within(f.offset, f.offset + f.size - 1);
            expect(got[0] + got[1], a).to.be.at.most(f.offset + f.size);
          }
        }
        expect(aliases.map(([a]) => a).filter((a) => !seen.has(a))).to.deep.equal([]);
      });

      it('round-trips a context through the typed view', function () {
        const { bytes, view } = vcpu_guest_context.alloc(abi);
        const wide = abi.wordSize === 8;
        const cr3 = xen_pfn_to_cr3(abi, 0x1234n);
        view.flags = BigInt(VGCF_i387_valid | VGCF_in_kernel | VGCF_online);
        view.fpu_ctxt.x[0] = 0x7f;
        view.fpu_ctxt.x[511] = 0x80;
        if (wide) {
          view.user_regs.rdx = 0x42n;
          view.user_regs.rip = 0xffffffff81000000n;
          view.user_regs.rsp = 0xffffffff81a00000n;
          view.user_regs.rflags = 0x200n;
          view.user_regs.error_code = 0xdead;
          view.fs_base = 0x7f0000000000n;
          view.gs_base_kernel = 0xffff888000000000n;
          view.syscall_callback_eip = 0xffffffff81c00000n;
        } else {
          view.user_regs.edx = 0x42;
          view.user_regs.eip = 0xc1000000;
          view.user_regs.esp = 0xc1a00000;
          view.user_regs.eflags = 0x200;
          view.user_regs.error_code = 0xbeef;
          view.event_callback_cs = 0xe019n;
          view.failsafe_callback_cs = 0xe019n;
        }
        view.user_regs.cs = wide ? 0xe033 : 0xe019;
        view.user_regs.saved_upcall_mask = 1;
        view.trap_ctxt[14]!.vector = 14;
        view.trap_ctxt[14]!.flags = 0;
        view.trap_ctxt[14]!.cs = wide ? 0xe033 : 0xe019;
        view.trap_ctxt[14]!.address = wide ? 0xffffffff81001234n : 0xc1001234n;
        view.gdt_frames.set(0, 0x5000n);
        view.gdt_ents = 14n;
        view.kernel_ss = wide ? 0xe02bn : 0xe021n;
        view.kernel_sp = wide ? 0xffffc90000004000n : 0xc1b00000n;
        view.ctrlreg.set(3, cr3);
        view.ctrlreg.set(1, wide ? 0x6000n : 0n);
        view.event_callback_eip = wide ? 0xffffffff81002000n : 0xc1002000n;
        view.vm_assist = 0b1101n;

        // The bytes land where offsetOf says.
        const at = (path: string) => vcpu_guest_context.offsetOf(abi, path);
        expect(readWord(bytes, at(START_INFO_REG_PATH[abi.name]), abi)).to.equal(0x42n);
        expect(readWord(bytes, at('ctrlreg[3]'), abi)).to.equal(cr3);
        expect(readWord(bytes, at('gdt_frames[0]'), abi)).to.equal(0x5000n);
        expect(readWord(bytes, at('gdt_ents'), abi)).to.equal(14n);
        expect(readWord(bytes, at('trap_ctxt[14].address'), abi)).to.equal(view.trap_ctxt[14]!.address);
        expect(bytes[at('trap_ctxt[14].vector')]).to.equal(14);
        expect(bytes[at('user_regs.saved_upcall_mask')]).to.equal(1);
        expect(bytes[at('fpu_ctxt.x[511]')]).to.equal(0x80);
        expect(readWord(bytes, at('flags'), abi)).to.equal(BigInt(VGCF_i387_valid | VGCF_in_kernel | VGCF_online));

        // A second view over a copy (a BASIC record's blob) reads the same context back.
        const blob = Buffer.from(bytes);
        const back = vcpu_guest_context.view(abi, blob);
        expect(back.flags).to.equal(view.flags);
        expect(back.fpu_ctxt.x[0]).to.equal(0x7f);
        expect(back.user_regs.cs).to.equal(view.user_regs.cs);
        expect(back.user_regs.error_code).to.equal(wide ? 0xdead : 0xbeef);
        expect(back.trap_ctxt[14]!.address).to.equal(view.trap_ctxt[14]!.address);
        expect(back.trap_ctxt[13]!.address).to.equal(0n);
        expect(back.gdt_frames.toArray()).to.deep.equal([0x5000n, ...Array<bigint>(15).fill(0n)]);
        expect(back.ctrlreg.get(3)).to.equal(cr3);
        expect(back.kernel_sp).to.equal(view.kernel_sp);
        expect(back.vm_assist).to.equal(0b1101n);
        if (wide) {
          expect([back.user_regs.rdx, back.user_regs.rip, back.user_regs.rsp, back.user_regs.rflags]).to.deep.equal([
            0x42n, 0xffffffff81000000n, 0xffffffff81a00000n, 0x200n,
          ]);
          expect([back.fs_base, back.gs_base_kernel, back.gs_base_user]).to.deep.equal([0x7f0000000000n, 0xffff888000000000n, 0n]);
          expect(back.syscall_callback_eip).to.equal(0xffffffff81c00000n);
        } else {
          expect([back.user_regs.edx, back.user_regs.eip, back.user_regs.esp, back.user_regs.eflags]).to.deep.equal([
            0x42, 0xc1000000, 0xc1a00000, 0x200,
          ]);
          expect([back.event_callback_cs, back.failsafe_callback_cs]).to.deep.equal([0xe019n, 0xe019n]);
        }
        // Rewriting through the second view changes only the blob, as the toolstack's mfn→pfn pass would.
        back.ctrlreg.set(3, xen_pfn_to_cr3(abi, 0x99n));
        expect(view.ctrlreg.get(3)).to.equal(cr3);
        expect(readWord(blob, at('ctrlreg[3]'), abi)).to.equal(xen_pfn_to_cr3(abi, 0x99n));
      });
    });
  }

  describe('VGCF_* flags', function () {
    it('has Xen\'s values and both spellings', function () {
      expect([VGCF_i387_valid, VGCF_in_kernel, VGCF_online, VGCF_in_syscall]).to.deep.equal([1, 4, 32, 256]);
      expect([VGCF_I387_VALID, VGCF_IN_KERNEL, VGCF_IN_SYSCALL]).to.deep.equal([VGCF_i387_valid, VGCF_in_kernel, VGCF_in_syscall]);
      expect(VGCF_CONSTANTS.header).to.equal('arch-x86/xen.h');
      expect(VGCF_X86_64_CONSTANTS.abi).to.equal('x86_64');
    });
  });
});
