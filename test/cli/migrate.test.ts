/**
 * `xenabi migrate`, in process through `main` (and once as a process): one live migration per
 * test on a small guest (16 MiB), with seeds and workloads that give each outcome deterministically.
 * deep-tracking ends `identical` (exit 0) on both ABIs; map-once with a ballooning workload ends
 * `corrupted` and abort-on-change on a linear guest `aborted` with libxc's message (exit 1, with
 * the command line that replays the run); `--json` has the documented shape and a seed replays to
 * the same object; bad arguments exit 2 with one line and no stack.
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inProcess, expectUsageError, type Run } from '../support/cli.js';
import { formatMemorySize, parseMemorySize, type MigrateJson } from '../../cli/migrate.js';

const root = fileURLToPath(new URL('../..', import.meta.url));




const SMALL = ['--memory', '16M'];
/** Balloons in and out every round: the linear list grows and its generation moves during the save. */
const BALLOONING = ['--workload', 'balloon=100%,writes=100%', '--seed', '1'];

function json(r: Run): MigrateJson {
  expect(r.stderr).to.equal('');
  return JSON.parse(r.stdout) as MigrateJson;
}

function replayLine(stdout: string): string {
  const lines = stdout.split('\n').filter((l) => l.startsWith('replay: '));
  expect(lines, stdout).to.have.length(1);
  return lines[0]!.slice('replay: '.length);
}

describe('xenabi migrate', function () {
  this.timeout(20_000);

  for (const arch of ['x86_64', 'x86_32']) {
    it(`${arch}: deep-tracking with a ballooning workload is identical, exit 0`, async function () {
      this.slow(2000);
      const r = await inProcess('migrate', '--arch', arch, ...SMALL, '--toolstack', 'deep-tracking', ...BALLOONING);
      expect(r.status, r.stdout + r.stderr).to.equal(0);
      expect(r.stderr).to.equal('');
      const lines = r.stdout.split('\n');
      expect(lines[0]).to.equal(`migrate: ${arch} linear guest, 16M (4096 pages), toolstack deep-tracking (mechanisms 2,3,4), workload balloon=100%,writes=100%, seed 1`);
      expect(lines).to.include('round  checkpoint  kind   pfns  resent (p2m)  deferred');
      expect(r.stdout).to.match(/^ +1 +1 +full +4096 +0 +\d+$/m);
      expect(r.stdout).to.match(/^ +\d+ +1 +final +\d+ +\d+ +\d+$/m);
      expect(r.stdout).to.match(/^pages sent: \d+ \(and \d+ pfns as XTAB\)$/m);
      // The guest grew its linear list during the save (remapped, frame list resent). Pfns the growth
      // newly covers are first sends, not resends; with Linux's scrub the ballooned pfns are dirty
      // anyway, so this workload needs no p2m-driven resend (test/toolstack/hazards covers those).
      expect(r.stdout).to.match(/^pages resent because of p2m changes: \d+$/m);
      expect(r.stdout).to.match(/^X86_PV_P2M_FRAMES records: [2-9]$/m);
      expect(r.stdout).to.match(/^p2m remaps: [1-9]$/m);
      expect(lines.at(-2)).to.equal('verdict: identical');
      expect(r.stdout).to.not.contain('replay:');
    });

    it(`${arch}: map-once with a ballooning workload is corrupted, exit 1, the first pfns and the replay line`, async function () {
      this.slow(2000);
      const r = await inProcess('migrate', '--arch', arch, ...SMALL, '--toolstack', 'map-once', ...BALLOONING);
      expect(r.status, r.stdout + r.stderr).to.equal(1);
      expect(r.stderr).to.equal('');
      expect(r.stdout).to.match(/^verdict: corrupted: [1-9]\d* pfns differ$/m);
      expect(r.stdout).to.match(/^ {2}pfn 0x[0-9a-f]+ (content|missing|p2m|m2p|type|\w+): .+$/m);
      expect(r.stdout).to.match(/^pages resent because of p2m changes: 0$/m);
      expect(replayLine(r.stdout)).to.equal(
        `xenabi migrate --arch ${arch} --guest linear --memory 16M --toolstack map-once --workload balloon=100%,writes=100% --seed 1`,
      );
    });

    it(`${arch}: abort-on-change on a linear guest aborts with libxc's message, exit 1`, async function () {
      this.slow(2000);
      const r = await inProcess('migrate', '--arch', arch, ...SMALL, '--toolstack', 'abort-on-change', ...BALLOONING);
      expect(r.status, r.stdout + r.stderr).to.equal(1);
      expect(r.stdout).to.match(/^verdict: aborted: p2m generation count changed\. Migration aborted\. .*$/m);
      expect(replayLine(r.stdout)).to.contain('--toolstack abort-on-change');
    });
  }

  it('abort-on-change on a legacy-tree guest has no check and is corrupted (upstream known issue)', async function () {
    this.slow(2000);
    const r = json(await inProcess('migrate', '--guest', 'legacy-tree', ...SMALL, '--toolstack', 'abort-on-change', ...BALLOONING, '--json'));
    expect(r.outcome).to.equal('corrupted');
    expect(r.p2m_source).to.equal('tree');
    expect(r.differing_pfns.length).to.be.greaterThan(0);
  });

  it('--json: one object with the documented fields', async function () {
    this.slow(2000);
    const r = await inProcess('migrate', ...SMALL, '--toolstack', 'map-once', ...BALLOONING, '--json');
    expect(r.status).to.equal(1);
    const out = json(r);
    expect(out).to.include({ outcome: 'corrupted', seed: 1, arch: 'x86_64', guest: 'linear', toolstack: 'map-once', memory: '16M', memory_pages: 4096, checkpoints: 0, workload: 'balloon=100%,writes=100%' });
    expect(out.mechanisms).to.deep.equal([]);
    expect(out.reason).to.be.a('string').and.not.equal('');
    for (const k of ['rounds', 'pages_sent', 'resent_p2m', 'p2m_frames_records', 'remaps', 'differing', 'xtab_sent', 'steps']) expect(out, k).to.have.property(k).that.is.a('number');
    expect(out.round_log).to.have.length(out.rounds);
    expect(out.round_log[0]).to.deep.equal({ round: 1, checkpoint: 1, kind: 'full', pfns: 4096, resent_p2m: 0, deferred: out.round_log[0]!.deferred });
    expect(out.differing_pfns.length).to.be.within(1, 20);
    for (const d of out.differing_pfns) {
      expect(d).to.have.all.keys('pfn', 'kind', 'detail');
      expect(d.pfn).to.be.a('number');
      expect(d.detail).to.be.a('string');
    }
    expect(out.stream).to.equal(null);
    expect(out.replay).to.equal('xenabi migrate --arch x86_64 --guest linear --memory 16M --toolstack map-once --workload balloon=100%,writes=100% --seed 1 --json');

    const ok = json(await inProcess('migrate', ...SMALL, '--mechanisms', '2,3,4', ...BALLOONING, '--json'));
    expect(ok).to.include({ outcome: 'identical', reason: null, replay: null, differing: 0, toolstack: 'deep-tracking' });
    expect(ok.mechanisms).to.deep.equal([2, 3, 4]);
    expect(ok.differing_pfns).to.deep.equal([]);
    expect(ok.resent_p2m).to.be.a('number').at.least(0);
    expect(ok.remaps).to.be.greaterThan(0);
  });

  it('without --seed a random seed is printed, and --seed replays the run to the same JSON', async function () {
    this.slow(4000);
    const first = json(await inProcess('migrate', ...SMALL, '--workload', 'balloon=50%,writes=50%', '--json'));
    expect(first.seed).to.be.a('number').within(0, 2 ** 32 - 1);
    const again = json(await inProcess('migrate', ...SMALL, '--workload', 'balloon=50%,writes=50%', '--seed', String(first.seed), '--json'));
    expect(again).to.deep.equal(first);
    const text = await inProcess('migrate', ...SMALL, '--workload', '', '--toolstack', 'map-once');
    expect(text.stdout.split('\n')[0]).to.match(/^migrate: x86_64 linear guest, 16M \(4096 pages\), toolstack map-once, workload \(none\), seed \d+ \(random\)$/);
  });

  it('the printed replay line gives the same result', async function () {
    this.slow(4000);
    // Defaults left out: the replay line spells every option out.
    const r = await inProcess('migrate', '--arch', 'x86_32', ...SMALL, '--toolstack', 'map-once', '--workload', 'balloon=1,writes=1', '--seed', '5');
    expect(r.status).to.equal(1);
    const line = replayLine(r.stdout);
    expect(line).to.equal('xenabi migrate --arch x86_32 --guest linear --memory 16M --toolstack map-once --workload balloon=100%,writes=100% --seed 5');
    const args = line.split(' ');
    expect(args.slice(0, 2)).to.deep.equal(['xenabi', 'migrate']);
    const replayed = await inProcess(...args.slice(1));
    expect(replayed.status).to.equal(1);
    expect(replayed.stdout).to.equal(r.stdout);
  });

  it('a process run: exit status and output on the real streams', function () {
    this.slow(6000);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/xenabi.ts', 'migrate', ...SMALL, ...BALLOONING, '--toolstack', 'abort-on-change'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, FORCE_COLOR: '0' },
    });
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(/^verdict: aborted: p2m generation count changed/m);
  });

  describe('bad arguments: exit 2, one line', function () {
    let dir: string;
    before(function () {
      dir = mkdtempSync(join(tmpdir(), 'xenabi-migrate-'));
    });
    after(function () {
      rmSync(dir, { recursive: true, force: true });
    });

    const cases: [string, string[], RegExp][] = [
      ['unknown arch', ['--arch', 'arm64'], /unknown arch 'arm64' \(valid: x86_32, x86_64\)/],
      ['unknown guest', ['--guest', 'windows'], /unknown guest 'windows' \(valid: legacy-tree, linear, tree\+linear, skip-bump, .*stale-mid-page\)/],
      ['unknown toolstack', ['--toolstack', 'remus'], /unknown toolstack 'remus' \(valid: map-once, abort-on-change, deep-tracking\)/],
      ['a size without a number', ['--memory', 'big'], /bad memory size 'big': expected bytes, or a whole number with K, M, G or T/],
      ['a size with an unknown unit', ['--memory', '64Q'], /bad memory size '64Q'/],
      ['a size that is not whole pages', ['--memory', '4097'], /bad memory size '4097': 4097 bytes is not a whole number of 4 KiB pages/],
      ['a zero size', ['--memory', '0M'], /bad memory size '0M': must be more than 0/],
      ['a size beyond 16T', ['--memory', '32T'], /bad memory size '32T': more than 16T/],
      ['a guest too small to boot', ['--memory', '4M'], /guest memory of 1024 pages is too small \(at least 8 MiB\)/],
      ['--mechanisms with another toolstack', ['--toolstack', 'map-once', '--mechanisms', '2'], /--mechanisms applies to --toolstack deep-tracking only, not map-once/],
      ['an unknown mechanism', ['--mechanisms', '2,5'], /unknown mechanism '5' in --mechanisms '2,5' \(valid: 2, 3, 4/],
      ['an empty mechanism list', ['--mechanisms', ''], /unknown mechanism '' in --mechanisms ''/],
      ['a mechanism twice', ['--mechanisms', '3,3'], /mechanism 3 given twice/],
      ['an unknown workload operation', ['--workload', 'balloon=1%,swap=2%'], /workload "balloon=1%,swap=2%": unknown operation "swap"; valid keys: balloon, exchange/],
      ['a workload rate that is not a number', ['--workload', 'balloon=lots'], /rate "lots" of balloon is not a number/],
      ['a workload the guest cannot run', [...SMALL, '--workload', 'relayout=1%'], /relayout=0\.01 applies to legacy-tree guests only; this one is linear/],
      ['a negative seed', ['--seed', '-1'], /option '--seed' takes a whole number >= 0, not '-1'/],
      ['a seed beyond 32 bits', ['--seed', '4294967296'], /option '--seed' 4294967296 is out of range \(at most 4294967295\)/],
      ['a bad checkpoint count', ['--checkpoints', 'two'], /option '--checkpoints' takes a whole number >= 0, not 'two'/],
      ['--stream for a guest too big to serialise', ['--memory', '512G', '--stream', 'x.stream'], /--stream keeps every page's 4 KiB: the stream of a 512G guest would be over 512 GiB; --stream takes --memory up to 4G/],
      ['an unknown option', ['--verbose'], /unknown option '--verbose' for 'xenabi migrate' \(valid: --arch, --guest, --memory, --toolstack, --mechanisms, --workload, --seed, --checkpoints, --stream, --json, --help\)/],
      ['an extra argument', ['now'], /unexpected argument 'now' for 'xenabi migrate'/],
      ['a missing value', ['--memory'], /option '--memory' needs a value/],
    ];
    for (const [name, args, message] of cases) {
      it(name, async function () {
        expect(expectUsageError(await inProcess('migrate', ...args))).to.match(message);
      });
    }

    it('a stream file in a missing directory; no file is left behind by a refused run', async function () {
      const missing = join(dir, 'no-such-dir', 'x.stream');
      expect(expectUsageError(await inProcess('migrate', ...SMALL, '--stream', missing))).to.equal(`xenabi: error: cannot write '${missing}': ENOENT: no such file or directory`);
      const file = join(dir, 'refused.stream');
      expectUsageError(await inProcess('migrate', ...SMALL, '--workload', 'relayout=1%', '--stream', file));
      expect(existsSync(file)).to.equal(false);
    });
  });

  it('sizes: K/M/G/T are powers of two, printed back in the shortest exact form', function () {
    expect(parseMemorySize('64M')).to.equal(64 * 2 ** 20);
    expect(parseMemorySize('1G')).to.equal(2 ** 30);
    expect(parseMemorySize('512G')).to.equal(2 ** 39);
    expect(parseMemorySize('16384k')).to.equal(2 ** 24);
    expect(parseMemorySize('1GiB')).to.equal(2 ** 30);
    expect(parseMemorySize('8192')).to.equal(8192);
    expect(formatMemorySize(2 ** 39)).to.equal('512G');
    expect(formatMemorySize(16 * 2 ** 20 + 4096)).to.equal('16388K');
    expect(formatMemorySize(3 * 4096)).to.equal('12K');
  });

  it('--help lists the options, the exit codes; `xenabi --help` lists the command', async function () {
    const r = await inProcess('migrate', '--help');
    expect(r.status).to.equal(0);
    for (const text of ['Usage: xenabi migrate [options]', '--arch <abi>', '--guest <name>', '--memory <size>', '--toolstack <name>', '--mechanisms <list>', '--workload <spec>', '--seed <n>', '--checkpoints <n>', '--stream <file>', '--json', 'Exit status: 0 identical, 1 aborted or corrupted, 2 bad arguments.']) {
      expect(r.stdout).to.contain(text);
    }
    expect((await inProcess('--help')).stdout).to.match(/^ {2}migrate \[options\] +live-migrate an emulated PV guest/m);
  });
});
