/**
 * `xenabi verify-stream FILE`: sample libxc streams written into temp files and read back through
 * the command, as a process and in process through `main`. Valid streams (x86_64 plain, x86_32
 * checkpointed) in text and JSON, exit 0; invalid ones (truncated, bad marker, reserved bits) exit 1
 * with the records up to the problem and one line naming the record, field and stream offset; bad
 * input (missing file, unknown flag, bad choice) exits 2 with one line, never a stack trace.
 */

import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { X86_32, X86_64 } from '../../abi/index.js';
import { inProcess, expectUsageError, type Run } from '../support/cli.js';
import { readStream, recordName } from '../../toolstack/index.js';
import { pageDataBody, pfnWord, rawMiddleOffset, rawRecord, rawStream, sampleStream } from '../toolstack/support/streams.js';

const root = fileURLToPath(new URL('../..', import.meta.url));


function xenabi(...args: string[]): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/xenabi.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}



interface JsonOutput {
  file: string;
  version: number | null;
  records: { offset: number; type: string; length: number; description: string }[];
  summary: null | {
    version: number;
    guestWidth: number;
    ptLevels: number;
    records: number;
    pfns: number;
    pagesWithData: number;
    pagesByType: Record<string, number>;
    checkpoints: number;
    endedBy: string;
    bytes: number;
  };
  valid: boolean;
  error?: { code: string; record: string; field: string | null; offset: number; message: string };
}

describe('xenabi verify-stream', function () {
  this.timeout(60_000);
  let dir: string;
  const file = (name: string, bytes: Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const s64 = sampleStream({ abi: X86_64 });
  const s32 = sampleStream({ abi: X86_32, checkpoints: 2 });
  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'xenabi-verify-stream-'));
  });
  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('valid streams', function () {
    it('x86_64, text (process): one line per record with offset, type, length, description, then the summary; exit 0', function () {
      const path = file('x86_64.stream', s64);
      const r = xenabi('verify-stream', path);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.equal('');
      const lines = r.stdout.trimEnd().split('\n');
      const expected = readStream(s64).records;
      expect(lines).to.have.length(expected.length + 1);
      expected.forEach((rec, i) => {
        const [offset, type, length] = lines[i]!.trim().split(/\s+/);
        expect([offset, type, Number(length)], lines[i]).to.deep.equal([`0x${rec.offset.toString(16)}`, recordName(rec.record.type), rec.length]);
      });
      expect(lines[0]).to.match(/^0x28 +X86_PV_INFO +8 +64-bit guest, 4 levels of page tables$/);
      expect(r.stdout).to.match(/^0x\w+ +PAGE_DATA +\d+ +32 pfns \(21 NOTAB, 1 L1TAB.*\), 29 pages of data, pfns 0x0\.\.0x1f$/m);
      expect(lines.at(-2)).to.match(/^0x\w+ +END +0$/);
      expect(lines.at(-1)).to.match(/^stream v3, guest width 8 \(64-bit, 4 levels\), 14 records, \d+ bytes, pages: 33 pfns \(21 NOTAB, .*, 2 XTAB\), 29 with data, .*0 checkpoints, ended by END: valid$/);
    });

    it('x86_64, JSON: {version, records, summary, valid: true}', async function () {
      const r = await inProcess('verify-stream', file('x86_64.stream', s64), '--format', 'json');
      expect(r).to.include({ status: 0, stderr: '' });
      const out = JSON.parse(r.stdout) as JsonOutput;
      expect(out.valid).to.equal(true);
      expect(out.version).to.equal(3);
      const expected = readStream(s64).records;
      expect(out.records.map((x) => [x.offset, x.type, x.length])).to.deep.equal(expected.map((x) => [x.offset, recordName(x.record.type), x.length]));
      expect(out.records[0]).to.deep.equal({ offset: 0x28, type: 'X86_PV_INFO', length: 8, description: '64-bit guest, 4 levels of page tables' });
      expect(out.records.at(-1)).to.deep.equal({ offset: out.records.at(-1)!.offset, type: 'END', length: 0, description: '' });
      expect(out.summary).to.include({ version: 3, guestWidth: 8, ptLevels: 4, records: 14, pfns: 33, pagesWithData: 29, checkpoints: 0, endedBy: 'END', bytes: s64.length });
      expect(out.summary!.pagesByType).to.include({ NOTAB: 21, L1TAB: 1, XTAB: 2, BROKEN: 1 });
      expect(out).to.not.have.property('error');
    });

    it('x86_32 checkpointed, text (process) and JSON: guest width 4, 2 checkpoints', async function () {
      const path = file('x86_32.stream', s32);
      const text = xenabi('verify-stream', path, '--stream-type', 'checkpointed');
      expect(text.status, text.stderr).to.equal(0);
      expect(text.stderr).to.equal('');
      expect(text.stdout).to.match(/^0x28 +X86_PV_INFO +8 +32-bit guest, 3 levels of page tables$/m);
      expect(text.stdout.match(/^0x\w+ +CHECKPOINT +0$/gm)).to.have.length(2);
      expect(text.stdout.trimEnd().split('\n').at(-1)).to.match(/^stream v3, guest width 4 \(32-bit, 3 levels\), 23 records, .* 2 checkpoints, ended by END: valid$/);
      const json = await inProcess('verify-stream', path, '--format', 'json', '--stream-type', 'checkpointed');
      expect(json).to.include({ status: 0, stderr: '' });
      const out = JSON.parse(json.stdout) as JsonOutput;
      expect(out.valid).to.equal(true);
      expect(out.records).to.have.length(23);
      expect(out.summary).to.include({ guestWidth: 4, ptLevels: 3, checkpoints: 2, endedBy: 'END' });
      // Without the flag either kind is taken; as a plain stream the first CHECKPOINT is refused.
      expect((await inProcess('verify-stream', path)).status).to.equal(0);
      const plain = await inProcess('verify-stream', path, '--stream-type', 'plain');
      expect(plain.status).to.equal(1);
      expect(plain.stderr).to.match(/^xenabi: error: .*x86_32\.stream: CHECKPOINT at offset 0x[0-9a-f]+: .*\n$/);
    });
  });

  describe('invalid streams: exit 1', function () {
    // Cut inside SHARED_INFO's body: the reader stops at the body's offset.
    const records = readStream(s64).records;
    const shared = records.find((x) => recordName(x.record.type) === 'SHARED_INFO')!;
    const truncated = s64.subarray(0, shared.offset + 8 + 100);
    const before = records.filter((x) => x.offset < shared.offset);

    it('truncated (process): the records before it, then one line naming the record, field and offset', function () {
      const path = file('truncated.stream', truncated);
      const r = xenabi('verify-stream', path);
      expect(r.status, r.stderr).to.equal(1);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines).to.have.length(before.length);
      expect(lines.at(-1)).to.match(/^0x\w+ +X86_TSC_INFO /);
      expect(r.stderr).to.equal(
        `xenabi: error: ${path}: SHARED_INFO body at offset 0x${(shared.offset + 8).toString(16)}: ` +
          'the input ends inside the body: 4096 bytes (body_length 4096 padded to 8) needed, 100 available\n',
      );
    });

    it('truncated, JSON: the records so far and the error on standard output, valid: false', async function () {
      const r = await inProcess('verify-stream', file('truncated.stream', truncated), '--format', 'json');
      expect(r).to.include({ status: 1, stderr: '' });
      const out = JSON.parse(r.stdout) as JsonOutput;
      expect(out.valid).to.equal(false);
      expect(out.summary).to.equal(null);
      expect(out.version).to.equal(3);
      expect(out.records.map((x) => x.offset)).to.deep.equal(before.map((x) => x.offset));
      expect(out.error).to.deep.include({ code: 'truncated', record: 'SHARED_INFO', field: 'body', offset: shared.offset + 8 });
      expect(out.error!.message).to.match(/^the input ends inside the body/);
    });

    it('a bad marker: nothing listed, one line at offset 0x0 (text), code bad-marker (JSON)', async function () {
      const bad = Buffer.from(s64);
      bad[3] = 0x7f;
      const path = file('bad-marker.stream', bad);
      const r = await inProcess('verify-stream', path);
      expect(r.status).to.equal(1);
      expect(r.stdout).to.equal('');
      expect(r.stderr).to.match(new RegExp(`^xenabi: error: ${path.replace(/[.\\/]/g, '\\$&')}: image header marker at offset 0x0: expected 0xffffffffffffffff, got 0xffffff7fffffffff [^\\n]*\\n$`));
      const json = JSON.parse((await inProcess('verify-stream', path, '--format', 'json')).stdout) as JsonOutput;
      expect(json).to.deep.include({ version: null, records: [], valid: false });
      expect(json.error).to.include({ code: 'bad-marker', record: 'image header', field: 'marker', offset: 0 });
    });

    it('non-zero reserved bits are refused by default and accepted with --lenient-reserved', async function () {
      const body = pageDataBody([pfnWord(0, 1) | (1n << 52n)], 1);
      const path = file('reserved.stream', rawStream(X86_64, [rawRecord(0x01, body)]));
      const strict = await inProcess('verify-stream', path);
      expect(strict.status).to.equal(1);
      expect(strict.stderr).to.contain(`PAGE_DATA pfn[0] at offset 0x${(rawMiddleOffset(X86_64) + 8 + 8).toString(16)}: reserved bits`);
      const lenient = await inProcess('verify-stream', path, '--lenient-reserved');
      expect(lenient, lenient.stderr).to.include({ status: 0, stderr: '' });
      expect(lenient.stdout).to.match(/: valid\n$/);
    });
  });

  describe('bad input: exit 2, one line', function () {
    it('a missing file (process), text and JSON', function () {
      const missing = join(dir, 'no-such.stream');
      expect(expectUsageError(xenabi('verify-stream', missing))).to.equal(`xenabi: error: cannot read '${missing}': ENOENT: no such file or directory`);
      expectUsageError(xenabi('verify-stream', missing, '--format', 'json'));
    });

    it('a directory', async function () {
      expect(expectUsageError(await inProcess('verify-stream', dir))).to.contain('EISDIR');
    });

    it('an unknown flag (process), a bad choice, a missing FILE', async function () {
      const path = file('x86_64.stream', s64);
      expect(expectUsageError(xenabi('verify-stream', path, '--strict'))).to.equal(
        "xenabi: error: unknown option '--strict' for 'xenabi verify-stream' (valid: --format, --stream-type, --lenient-reserved, --help)",
      );
      expect(expectUsageError(await inProcess('verify-stream', path, '--format', 'yaml'))).to.contain('(valid: text, json)');
      expect(expectUsageError(await inProcess('verify-stream', path, '--stream-type', 'remus'))).to.contain('(valid: plain, checkpointed)');
      expectUsageError(await inProcess('verify-stream'));
    });
  });

  it('--help lists the options and exit codes; `xenabi --help` lists the command', async function () {
    const r = xenabi('verify-stream', '--help');
    expect(r.status, r.stderr).to.equal(0);
    for (const text of ['Usage: xenabi verify-stream [options] <file>', '--format <format>', '"text", "json"', '--stream-type <type>', '"plain", "checkpointed"', '--lenient-reserved', 'Exit status: 0 valid stream, 1 invalid stream, 2 bad input']) {
      expect(r.stdout).to.contain(text);
    }
    expect((await inProcess('--help')).stdout).to.match(/^ {2}verify-stream \[options\] <file> +check a libxc migration stream/m);
  });

  it('a reader that went away (EPIPE) is not an error: exit 0, nothing on standard error', async function () {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/xenabi.ts', 'verify-stream', file('x86_64.stream', s64)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(stderr).to.equal('');
    expect(code).to.equal(0);
  });
});
