/**
 * The benchmark runner's own logic (bench/index.ts, bench/results.ts, bench/scale.ts): its command
 * line (a bad one is one line on standard error and exit 2, before any benchmark runs), the table's
 * reporting of targets, skipped figures and figures not measurable yet, and the parsing of GNU
 * time's report. The benchmarks themselves run in `npm run bench`, not here.
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchModule } from '../../bench/context.js';
import { MODULES, NOT_MEASURABLE, UsageError, main, parseArgs, type BenchSetup } from '../../bench/index.js';
import { met, table, type BenchRun, type Figure } from '../../bench/results.js';
import { parseTimeVerbose } from '../../bench/scale.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function capture(argv: string[], setup: BenchSetup = {}): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) }, setup);
  return { code, out, err };
}

function figure(over: Partial<Figure>): Figure {
  return { figure: '1', name: 'f', value: 1, unit: 'u', machine: 'm', ...over };
}

describe('bench runner: command line', function () {
  it('defaults to the full run of every module on the kernel BTF in /sys', function () {
    expect(parseArgs([])).to.deep.equal({ quick: false, btfFile: '/sys/kernel/btf/vmlinux', only: undefined, help: false });
  });

  it('takes --quick, --file FILE, --file=FILE and --only with a comma list', function () {
    expect(parseArgs(['--quick', '--file', 'vmlinux'])).to.include({ quick: true, btfFile: 'vmlinux' });
    expect(parseArgs(['--file=b.btf']).btfFile).to.equal('b.btf');
    expect(parseArgs(['--only', 'hypercalls,p2m-read', '--only=scale']).only).to.deep.equal(['hypercalls', 'p2m-read', 'scale']);
  });

  it('rejects an unknown flag, naming it and the valid ones', function () {
    expect(() => parseArgs(['--fast'])).to.throw(UsageError, "unknown argument '--fast' (valid: --quick, --only IDS, --file BTF, --help)");
  });

  it('rejects an unknown module in --only, listing the modules', function () {
    expect(() => parseArgs(['--only', 'hypercalls,warp'])).to.throw(UsageError, `--only: unknown benchmark 'warp' (valid: ${MODULES.map((m) => m.id).join(', ')})`);
  });

  it('rejects a flag that lacks its value or has one it does not take', function () {
    expect(() => parseArgs(['--file'])).to.throw(UsageError, '--file needs a value');
    expect(() => parseArgs(['--only', '--quick'])).to.throw(UsageError, '--only needs a value');
    expect(() => parseArgs(['--quick=yes'])).to.throw(UsageError, '--quick takes no value');
  });

  it('main: a bad command line is one line on stderr and exit 2, with nothing run', async function () {
    const r = await capture(['--quick', '--bogus']);
    expect(r.code).to.equal(2);
    expect(r.out).to.deep.equal([]);
    expect(r.err).to.deep.equal(["bench: unknown argument '--bogus' (valid: --quick, --only IDS, --file BTF, --help)"]);
  });

  it('main: --help prints the usage and exits 0', async function () {
    const r = await capture(['--help']);
    expect(r.code).to.equal(0);
    expect(r.out.join('\n')).to.match(/^usage: npm run bench -- \[--quick\]/);
  });

  it('the process exits 2 on an unknown flag, with one line on stderr', function () {
    this.timeout(30000);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/index.ts', '--nope'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stdout).to.equal('');
    expect(r.stderr.trim().split('\n')).to.deep.equal(["bench: unknown argument '--nope' (valid: --quick, --only IDS, --file BTF, --help)"]);
  });
});

describe('bench runner: exit codes and latest.json', function () {
  let dir: string;
  let file: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'bench-test-'));
    file = join(dir, 'latest.json');
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  const slow: BenchModule = {
    id: 'slow',
    title: 'misses its target',
    run: (ctx) => ({ figures: [figure({ name: 'slow', value: 1, machine: ctx.machine, target: { of: 'value', op: '>=', bound: 5 } })] }),
  };
  const broken: BenchModule = {
    id: 'broken',
    title: 'a hypercall returned the wrong count',
    run: () => {
      throw new Error('Fail: populate_physmap of 512 extents, expected 512, got 511');
    },
  };

  it('a missed target is reported, not fatal: exit 0 and latest.json written, with the unmeasurable figures only named', async function () {
    const r = await capture(['--quick'], { modules: [slow], resultsFile: file });
    expect(r.code).to.equal(0);
    expect(r.out.join('\n')).to.include('MISSED');
    const run = JSON.parse(readFileSync(file, 'utf8')) as BenchRun;
    expect(run).to.include({ quick: true, command: 'npm run bench -- --quick' });
    expect(run.figures.map((f) => f.name)).to.deep.equal(['slow']);
    expect(run.figures[0]).to.include({ value: 1, unit: 'u' });
    expect(run.figures[0]!.machine).to.be.a('string').and.not.equal('');
    expect(run.notMeasurable).to.deep.equal({ figures: [...NOT_MEASURABLE.figures], reason: NOT_MEASURABLE.reason });
  });

  it('a broken benchmark fails the run (exit 1), the others still run, and latest.json is not written', async function () {
    const r = await capture(['--quick'], { modules: [broken, slow], resultsFile: file });
    expect(r.code).to.equal(1);
    const out = r.out.join('\n');
    expect(out).to.include('broken: Fail: populate_physmap of 512 extents, expected 512, got 511');
    expect(out).to.match(/^1\s+slow\s/m);
    expect(existsSync(file)).to.equal(false);
  });
});

describe('bench runner: the table', function () {
  it('reports a target as met or MISSED, for a value or a ratio, in either direction', function () {
    expect(met(figure({ value: 4.9, target: { of: 'value', op: '>=', bound: 5 } }))).to.equal(false);
    expect(met(figure({ value: 5, target: { of: 'value', op: '>=', bound: 5 } }))).to.equal(true);
    expect(met(figure({ ratio: 5.1, target: { of: 'ratio', op: '<=', bound: 5 } }))).to.equal(false);
    expect(met(figure({ ratio: 2, target: { of: 'ratio', op: '<=', bound: 5 } }))).to.equal(true);
    expect(met(figure({}))).to.equal(undefined);
    const t = table({ figures: [figure({ name: 'slow', value: 4.2, target: { of: 'value', op: '>=', bound: 5 } })], skipped: [], notMeasurable: NOT_MEASURABLE });
    expect(t.split('\n')[1]).to.match(/^1\s+slow\s+4\.20\s+u\s+≥ 5\s+MISSED$/);
  });

  it('states figures not measurable yet in one line, without a value, and nothing when every figure is measured', function () {
    const pending = { figures: ['7', '8'], reason: 'needs a later issue' };
    const lines = table({ figures: [figure({})], skipped: [], notMeasurable: pending }).split('\n');
    const nm = lines.filter((l) => l.includes('not measurable'));
    expect(nm.map((l) => l.replace(/\s+/g, ' '))).to.deep.equal(['7, 8 not measurable yet: needs a later issue']);
    expect(lines.filter((l) => !l.includes('not measurable') && /^[78]\s/.test(l))).to.deep.equal([]);
    const none = table({ figures: [figure({})], skipped: [], notMeasurable: { figures: [], reason: '' } });
    expect(none).to.not.include('not measurable');
    expect(NOT_MEASURABLE.figures).to.deep.equal([]);
  });

  it('lists a skipped figure with its reason and no value', function () {
    const t = table({ figures: [], skipped: [{ figure: 'scale', name: '512 GiB', reason: 'not in --quick' }], notMeasurable: NOT_MEASURABLE });
    expect(t.split('\n')).to.include('scale  512 GiB: skipped, not in --quick');
  });
});

describe('bench scale: GNU time -v report', function () {
  const report = [
    '\tCommand being timed: "node --import tsx scripts/scale-512g.ts --json"',
    '\tUser time (seconds): 18.86',
    '\tSystem time (seconds): 3.07',
    '\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:19.74',
    '\tMaximum resident set size (kbytes): 2068804',
    '\tExit status: 0',
  ].join('\n');

  it('reads wall time (m:ss), peak RSS and CPU times', function () {
    const r = parseTimeVerbose(report);
    expect(r.wallSeconds).to.be.closeTo(79.74, 1e-9);
    expect(r).to.include({ maxRssKiB: 2068804, userSeconds: 18.86, systemSeconds: 3.07 });
    expect(parseTimeVerbose(report.replace('1:19.74', '1:02:03.5')).wallSeconds).to.be.closeTo(3723.5, 1e-9);
  });

  it('fails, naming the line, when the report lacks one', function () {
    expect(() => parseTimeVerbose(report.replace(/.*Maximum.*\n/, ''))).to.throw("no 'Maximum resident set size (kbytes)' line");
  });
});
