/**
 * `xenabi check-kernel` and `xenabi check-headers` run as processes: reports in text and JSON, exit 0
 * (nothing incompatible), 1 (something incompatible) and 2 (bad input: one line on standard error,
 * with the file offset where there is one, never a stack trace).
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ABI_STRUCTS } from '../../abi/index.js';
import { BTF_KIND } from '../../abi/check/index.js';
import { main } from '../../cli/program.js';
import { BtfBuilder, buildElf, sampleBtf } from '../support/btf-builder.js';
import { gccWithXenHeaders, requireOracle } from '../support/oracle.js';
import { makeHeaderVariant } from '../support/xen-fixtures.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function xenabi(args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/xenabi.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, FORCE_COLOR: '0', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same command line run in this process through `main`, for the many bad-input cases. */
async function inProcess(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
  return { status, stdout, stderr };
}

function expectOneErrorLine(r: Run): string {
  expect(r.status, r.stderr).to.equal(2);
  expect(r.stdout).to.equal('');
  expect(r.stderr).to.match(/^xenabi: error: [^\n]+\n$/);
  expect(r.stderr).to.not.match(/\n\s+at /);
  return r.stderr.trimEnd();
}

interface JsonReport {
  command: string;
  exitCode: number;
  abi: string;
  structs: { name: string; status: string; problems: { field: string; message: string }[] }[];
  summary: Record<string, number>;
}

describe('xenabi check-kernel (process)', function () {
  this.timeout(60_000);
  let dir: string;
  const file = (name: string, bytes: Buffer): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'xenabi-cli-check-'));
  });
  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('exit 0 and a text report for BTF whose only ABI struct is identical', function () {
    const r = xenabi(['check-kernel', file('ok.o', buildElf([{ name: '.BTF', data: sampleBtf().builder.build() }]))]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^xenabi check-kernel .*ok\.o\n {2}BTF: ELF64 x86-64 \.BTF at 0x40, \d+ bytes, \d+ types\n {2}guest ABI: x86_64 \(from the ELF class\)\n/);
    expect(r.stdout).to.match(/^ {2}identical {5}struct arch_shared_info$/m);
    expect(r.stdout).to.match(/^ {2}not present {3}struct shared_info$/m);
    expect(r.stdout).to.contain(`x86_64: 1 identical, 0 compatible, 0 incompatible, ${ABI_STRUCTS.length - 1} not present`);
    expect(r.stderr).to.equal('');
  });

  it('exit 1 and a JSON report naming the field when a struct is incompatible', function () {
    const b = new BtfBuilder();
    const ulong = b.int('long unsigned int', 8);
    const uint = b.int('unsigned int', 4);
    b.struct('arch_shared_info', 48, [
      ...['max_pfn', 'pfn_to_mfn_frame_list_list', 'nmi_reason', 'p2m_cr3', 'p2m_vaddr'].map((name, i) => ({ name, type: ulong, bitOffset: i * 64 })),
      { name: 'p2m_generation', type: uint, bitOffset: 320 },
    ]);
    const r = xenabi(['check-kernel', file('bad.btf', b.build()), '--format', 'json']);
    expect(r.status, r.stderr).to.equal(1);
    const report = JSON.parse(r.stdout) as JsonReport;
    expect(report).to.include({ command: 'check-kernel', exitCode: 1, abi: 'x86_64' });
    const ash = report.structs.find((s) => s.name === 'arch_shared_info')!;
    expect(ash.status).to.equal('incompatible');
    expect(ash.problems.map((p) => p.message)).to.deep.equal([
      'Fail: arch_shared_info.p2m_generation resized (x86_64), expected 8 bytes at 0x28, got 4 bytes at 0x28',
    ]);
    expect(report.summary).to.deep.equal({ identical: 0, compatible: 0, incompatible: 1, 'not present': ABI_STRUCTS.length - 1 });
    const text = xenabi(['check-kernel', file('bad.btf', b.build())]);
    expect(text.status).to.equal(1);
    expect(text.stdout).to.contain('  incompatible  struct arch_shared_info\n');
    expect(text.stdout).to.contain('result: incompatible structs found (exit 1)');
  });

  it('in process through main: the report on standard output, exit 0 or 1, nothing on standard error', async function () {
    const ok = await inProcess(['check-kernel', file('ok2.btf', sampleBtf().builder.build())]);
    expect(ok).to.include({ status: 0, stderr: '' });
    expect(ok.stdout).to.contain('result: no struct is incompatible (exit 0)');
    const bad = await inProcess(['check-kernel', file('ok2.btf', sampleBtf().builder.build()), '--arch', 'x86_32', '--format', 'json']);
    expect(bad).to.include({ status: 1, stderr: '' });
    expect((JSON.parse(bad.stdout) as JsonReport).structs.find((x) => x.name === 'arch_shared_info')!.status).to.equal('incompatible');
  });

  it('--arch x86_32 checks the same BTF against the other ABI', function () {
    const r = xenabi(['check-kernel', file('ok.btf', sampleBtf().builder.build()), '--arch', 'x86_32', '--format', 'json']);
    expect(r.status).to.equal(1);
    expect((JSON.parse(r.stdout) as JsonReport).abi).to.equal('x86_32');
  });

  describe('bad input: exit 2, one line, the offset (in process through main)', function () {
    const cases: { name: string; bytes: () => Buffer; says: RegExp }[] = [
      { name: 'not ELF', bytes: () => Buffer.from('hello world\n'), says: /not an ELF file, raw BTF or compressed kernel image \(it starts with 68 65 6c 6c\) \(at file offset 0x0\)$/ },
      { name: 'ELF without .BTF', bytes: () => buildElf([{ name: '.text', data: Buffer.alloc(8) }]), says: /ELF64 x86-64 file has no \.BTF section/ },
      { name: 'truncated BTF', bytes: () => sampleBtf().builder.build().subarray(0, 100), says: /BTF type section .* runs past the end of the data .* \(at file offset 0x8\)$/ },
      {
        name: 'corrupt BTF in ELF',
        bytes: () => {
          const btf = sampleBtf().builder.build();
          btf[2] = 7;
          return buildElf([{ name: '.BTF', data: btf }]);
        },
        says: /unsupported BTF version 7 \(expected 1\) \(at file offset 0x42\)$/,
      },
      {
        name: 'type id out of range',
        bytes: () => {
          const b = new BtfBuilder();
          b.typedef('t', 77);
          return b.build();
        },
        says: /type id 1 \(TYPEDEF\): referenced type id 77 is out of range \(the BTF has 1 types\) \(at file offset 0x20\)$/,
      },
      {
        name: 'reference cycle',
        bytes: () => {
          const b = new BtfBuilder();
          b.typedef('a', 2);
          b.volatile(1);
          return b.build();
        },
        says: /reference cycle: type id 2 \(VOLATILE\) refers to type id 1, which refers back to it \(at file offset 0x24\)$/,
      },
      {
        name: 'absurd count',
        bytes: () => {
          const b = new BtfBuilder();
          b.raw(BTF_KIND.ENUM, 'e', 0xffff, 4, []);
          return b.build();
        },
        says: /truncated BTF type record: type id 1 \(ENUM, vlen 65535\) needs 524292 bytes, 12 left in the type section \(at file offset 0x18\)$/,
      },
    ];
    for (const c of cases) {
      it(c.name, async function () {
        const path = file(c.name.replace(/\W+/g, '-'), c.bytes());
        const line = expectOneErrorLine(await inProcess(['check-kernel', path]));
        expect(line).to.contain(path);
        expect(line).to.match(c.says);
      });
    }

    it('a missing file, an unknown --arch and --format, no file at all', async function () {
      expect(expectOneErrorLine(await inProcess(['check-kernel', join(dir, 'nope')]))).to.match(/nope: cannot read: ENOENT: no such file or directory$/);
      expect(expectOneErrorLine(await inProcess(['check-kernel', 'x', '--arch', 'arm']))).to.contain("unknown arch 'arm' (valid: x86_32, x86_64)");
      expect(expectOneErrorLine(await inProcess(['check-kernel', 'x', '--format', 'xml']))).to.contain("unknown format 'xml' (valid: text, json)");
      expect(expectOneErrorLine(await inProcess(['check-kernel']))).to.contain("missing required argument 'file'");
    });

    it('as a process too: one line on standard error, no stack trace', function () {
      const line = expectOneErrorLine(xenabi(['check-kernel', file('cycle.btf', (() => {
        const b = new BtfBuilder();
        b.typedef('a', 1);
        return b.build();
      })())]));
      expect(line).to.match(/reference cycle: type id 1 \(TYPEDEF\) refers to type id 1, which refers back to it \(at file offset 0x18\)$/);
    });
  });

  it('/sys/kernel/btf/vmlinux: every ABI struct not present, exit 0', function () {
    const r = xenabi(['check-kernel', '/sys/kernel/btf/vmlinux', '--format', 'json']);
    if (r.status === 2 && /ENOENT/.test(r.stderr) && process.env.CI !== 'true') {
      console.log('      skipped: /sys/kernel/btf/vmlinux is absent');
      this.skip();
    }
    expect(r.status, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as JsonReport;
    expect(report.summary['not present']).to.equal(ABI_STRUCTS.length);
  });
});

describe('xenabi check-headers (process)', function () {
  this.timeout(120_000);

  it('Xen\'s installed headers: exit 0, every struct identical on both ABIs', function () {
    requireOracle(this, gccWithXenHeaders);
    const r = xenabi(['check-headers', '--format', 'json']);
    expect(r.status, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as { command: string; exitCode: number; abis: { abi: string; summary: Record<string, number> }[] };
    expect(report.command).to.equal('check-headers');
    expect(report.abis.map((a) => [a.abi, a.summary.identical])).to.deep.equal([['x86_32', ABI_STRUCTS.length], ['x86_64', ABI_STRUCTS.length]]);
  });

  it('in process through main: --header narrows the headers, -D reaches the compiler', async function () {
    requireOracle(this, gccWithXenHeaders);
    const r = await inProcess(['check-headers', '--header', 'xen/xen.h', '--arch', 'x86_32', '-D', 'XENABI_TEST_DEFINE']);
    expect(r.stderr).to.equal('');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.contain('  headers: xen/xen.h\n');
    expect(r.stdout).to.match(/^ {2}identical {5}struct shared_info$/m);
    expect(r.stdout).to.match(/^ {2}not present {3}struct gnttab_copy$/m);
  });

  it('a broken header: exit 1 and the field in the text report', function () {
    requireOracle(this, gccWithXenHeaders);
    const dir = mkdtempSync(join(tmpdir(), 'xenabi-cli-headers-'));
    try {
      const include = makeHeaderVariant(dir, 'p2m-generation-32');
      const r = xenabi(['check-headers', '--include', include, '--arch', 'x86_64', '-D', 'UNUSED_MACRO=1']);
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stdout).to.contain('Fail: arch_shared_info.p2m_generation resized (x86_64), expected 8 bytes at 0x28, got 4 bytes at 0x28');
      expect(r.stdout).to.contain('  defines: UNUSED_MACRO=1');
      expect(r.stdout).not.to.contain('x86_32:');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('no compiler: exit 2, one line naming the Debian packages', function () {
    expect(expectOneErrorLine(xenabi(['check-headers'], { CC: '/nonexistent/cc' }))).to.match(
      /cannot run C compiler '\/nonexistent\/cc' .*; install Debian packages: gcc gcc-multilib libxen-dev$/,
    );
  });

  it('bad input: a bad -D, a missing include directory, an unknown --arch — exit 2, one line', async function () {
    expect(expectOneErrorLine(await inProcess(['check-headers', '-D', '1BAD']))).to.contain("bad -D '1BAD' (valid: NAME, NAME=VALUE)");
    expect(expectOneErrorLine(await inProcess(['check-headers', '--include', '/nonexistent/dir']))).to.contain("include directory '/nonexistent/dir' does not exist");
    expect(expectOneErrorLine(await inProcess(['check-headers', '--arch', 'x86']))).to.contain("unknown arch 'x86' (valid: x86_32, x86_64)");
  });
});
