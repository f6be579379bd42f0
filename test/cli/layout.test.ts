/**
 * cli/xenabi.ts run as a process (`node --import tsx cli/xenabi.ts ...` from the project root):
 * version and help, `xenabi layout` to standard output and with --out, and bad input — one line on
 * standard error naming the valid choices, exit code 2, never a stack trace.
 */

import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ABI_STRUCTS } from '../../abi/index.js';
import { GUEST_ABIS, GUEST_ABI_NAMES } from '../../abi/guest-abi.js';
import { DOC_FORMATS, layoutDocFiles } from '../../abi/doc/index.js';
import { findPackageJson, packageVersion } from '../../cli/package-info.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const structNames = ABI_STRUCTS.map((s) => s.name);

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function xenabi(...args: string[]): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/xenabi.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'xenabi-layout-test-'));
}

/** Exactly one line, `xenabi: error: ...`, and no stack frame. */
function expectOneErrorLine(r: Run): string {
  expect(r.stderr, 'stderr').to.match(/^xenabi: error: [^\n]+\n$/);
  expect(r.stderr).to.not.match(/\n\s+at /);
  return r.stderr.trimEnd();
}

describe('xenabi (process)', function () {
  this.timeout(60_000);

  it('--version prints the version from package.json', function () {
    const r = xenabi('--version');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.equal(`${pkg.version}\n`);
  });

  it('--help lists the layout command', function () {
    const r = xenabi('--help');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/^Usage: xenabi /);
    expect(r.stdout).to.match(/^\s+layout \[options\]\s+\S/m);
  });

  it('`help layout` and `layout --help` show the same help, with every option', function () {
    const a = xenabi('help', 'layout');
    const b = xenabi('layout', '--help');
    expect(a.status).to.equal(0);
    expect(b.status).to.equal(0);
    expect(a.stdout).to.equal(b.stdout);
    for (const option of ['--arch', '--struct', '--format', '--out']) expect(a.stdout).to.include(option);
  });

  describe('bad input: exit 2, one line naming the valid choices', function () {
    const cases: { args: string[]; says: string; valid: readonly string[] }[] = [
      { args: ['layout', '--arch', 'foo'], says: "unknown arch 'foo'", valid: GUEST_ABI_NAMES },
      { args: ['layout', '--struct', 'foo'], says: "unknown struct 'foo'", valid: structNames },
      { args: ['layout', '--struct', 'shared_info', '--struct', 'nope'], says: "unknown struct 'nope'", valid: structNames },
      { args: ['layout', '--format', 'pdf'], says: "unknown format 'pdf'", valid: DOC_FORMATS },
      { args: ['layout', '--bogus'], says: "unknown option '--bogus'", valid: ['--arch', '--struct', '--format', '--out', '--help'] },
      { args: ['--bogus'], says: "unknown option '--bogus'", valid: ['--version', '--help'] },
      { args: ['layout', '--arch'], says: "option '--arch' needs a value", valid: GUEST_ABI_NAMES },
      { args: ['layout', '--struct'], says: "option '--struct' needs a value", valid: structNames },
      { args: ['layout', '--format'], says: "option '--format' needs a value", valid: DOC_FORMATS },
      { args: ['layout', '--out'], says: "option '--out' needs a value", valid: ['a directory path'] },
      { args: ['frob'], says: "unknown command 'frob'", valid: ['layout', 'help'] },
      { args: ['help', 'frob'], says: "unknown command 'frob'", valid: ['layout', 'help'] },
      { args: ['layout', 'extra'], says: "unexpected argument 'extra'", valid: ['--arch'] },
    ];
    for (const c of cases) {
      it(`xenabi ${c.args.join(' ')}`, function () {
        const r = xenabi(...c.args);
        expect(r.status, r.stderr).to.equal(2);
        expect(r.stdout).to.equal('');
        const line = expectOneErrorLine(r);
        expect(line).to.include(c.says);
        const valid = /\(valid: (.*)\)$/.exec(line)?.[1]?.split(', ');
        expect(valid, 'valid choices').to.include.members([...c.valid]);
      });
    }
  });

  it('an unwritable --out is one error line and exit 1', function () {
    const dir = tempDir();
    try {
      const file = join(dir, 'a-file');
      writeFileSync(file, '');
      const r = xenabi('layout', '--out', join(file, 'sub'));
      expect(r.status).to.equal(1);
      expect(expectOneErrorLine(r)).to.include(join(file, 'sub'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--out writes README.md and one .md per struct (md), layouts.html (html), <arch>.json (json)', function () {
    const dir = tempDir();
    try {
      const selection = { structs: ABI_STRUCTS, abis: GUEST_ABIS };
      for (const format of DOC_FORMATS) {
        const out = join(dir, format, 'nested');
        const r = xenabi('layout', '--format', format, '--out', out);
        expect(r.status, r.stderr).to.equal(0);
        expect(r.stdout).to.equal('');
        const expected = layoutDocFiles(format, selection);
        expect(readdirSync(out).sort()).to.deep.equal(expected.map((f) => f.name).sort());
        for (const f of expected) expect(readFileSync(join(out, f.name), 'utf8'), f.name).to.equal(f.content);
      }
      expect(readdirSync(join(dir, 'md', 'nested'))).to.include.members(['README.md', 'shared_info.md']);
      expect(readdirSync(join(dir, 'html', 'nested'))).to.deep.equal(['layouts.html']);
      expect(readdirSync(join(dir, 'json', 'nested')).sort()).to.deep.equal(['x86_32.json', 'x86_64.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--format json prints an array of one object per ABI with the documented shape', function () {
    const r = xenabi('layout', '--format', 'json');
    expect(r.status, r.stderr).to.equal(0);
    const docs = JSON.parse(r.stdout) as { arch: string; structs: Record<string, { fields: object[] }> }[];
    expect(docs.map((d) => d.arch)).to.deep.equal(['x86_32', 'x86_64']);
    for (const d of docs) {
      expect(Object.keys(d)).to.deep.equal(['arch', 'structs']);
      expect(Object.keys(d.structs)).to.deep.equal(structNames);
      for (const s of Object.values(d.structs)) {
        expect(Object.keys(s)).to.deep.equal(['size', 'align', 'fields']);
        for (const f of s.fields) expect(Object.keys(f)).to.deep.equal(['name', 'offset', 'size', 'type', 'doc']);
      }
    }
  });

  it('--arch and --struct narrow the output', function () {
    const r = xenabi('layout', '--format', 'json', '--arch', 'x86_64', '--struct', 'shared_info');
    expect(r.status, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout) as { arch: string; structs: Record<string, unknown> };
    expect(doc.arch).to.equal('x86_64');
    expect(Object.keys(doc.structs)).to.deep.equal(['shared_info']);
    const md = xenabi('layout', '--arch', 'x86_32', '--struct', 'vcpu_info', '--struct', 'shared_info');
    expect(md.status, md.stderr).to.equal(0);
    expect(md.stdout.match(/^## \S+ \S+$/gm)).to.deep.equal(['## struct vcpu_info', '## struct shared_info']);
    expect(md.stdout).to.match(/^### shared_info on x86_32$/m);
    expect(md.stdout).to.not.match(/^#+ .*x86_64/m);
  });

  it('exits quietly when the reader closes the pipe (xenabi layout | head -1)', async function () {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/xenabi.ts', 'layout', '--format', 'html'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Close the read end before the child writes: every write it makes hits EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(stderr).to.equal('');
    expect(code).to.equal(0);
  });
});

describe('cli/package-info: the version is found from the source and the compiled entry point', function () {
  it('walks up to the package.json named xen-pv-abi-kit, past other package.json files', function () {
    const dir = tempDir();
    try {
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'xen-pv-abi-kit', version: '9.8.7' }));
      mkdirSync(join(dir, 'dist', 'cli'), { recursive: true });
      writeFileSync(join(dir, 'dist', 'package.json'), JSON.stringify({ type: 'module' }));
      const compiled = pathToFileURL(join(dir, 'dist', 'cli', 'xenabi.js')).href;
      const source = pathToFileURL(join(dir, 'cli', 'xenabi.ts')).href;
      expect(findPackageJson(compiled)).to.equal(join(dir, 'package.json'));
      expect(packageVersion(compiled)).to.equal('9.8.7');
      expect(packageVersion(source)).to.equal('9.8.7');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads this project\'s version by default', function () {
    expect(packageVersion()).to.equal(pkg.version);
  });
});
