/** `xenabi conformance`: exit codes, one-line bad arguments, the replay command, user subjects. */

import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../cli/program.js';
import { checkTraceFile } from '../../conformance/trace/index.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['conformance', ...args], { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

describe('xenabi conformance', function () {
  this.timeout(300_000);

  for (const bad of [['--arch', 'arm'], ['--memory', '1M'], ['--shard', '3/2'], ['--scenario', 'nope'], ['--guest', 'nope'], ['--jobs', 'x'], ['--reporter', 'xml'], ['--guest', './no-such-module.js']]) {
    it(`exits 2 with one line for ${bad.join(' ')}`, async () => {
      const r = await run(bad);
      expect(r.code).to.equal(2);
      expect(r.err.trim().split('\n')).to.have.length(1);
      expect(r.err).to.match(/^xenabi: error: /);
    });
  }

  it('--list runs nothing and counts the cells', async () => {
    const r = await run(['--list']);
    expect(r.code).to.equal(0);
    expect(r.out).to.match(/cells selected: 720/);
  });

  it('an expected failing cell exits 0; its replay command reproduces the same result', async () => {
    const first = await run(['--scenario', 'balloon-out-after-sent', '--guest', 'linear', '--toolstack', 'map-once', '--arch', 'x86_32', '--seed', '5', '--jobs', '1', '--reporter', 'json']);
    expect(first.code).to.equal(0);
    const doc = JSON.parse(first.out) as { results: { verdict: string; outcome: string; rules_violated: string[]; replay: string; reason: string }[] };
    const cell = doc.results[0]!;
    expect(cell.verdict).to.equal('FAILURE');
    const args = cell.replay.split(' ').slice(2);
    const again = await run([...args, '--reporter', 'json', '--jobs', '1']);
    const cell2 = (JSON.parse(again.out) as typeof doc).results[0]!;
    expect({ ...cell2, replay: '' }).to.deep.include({ verdict: cell.verdict, outcome: cell.outcome, rules_violated: cell.rules_violated, reason: cell.reason });
  });

  it('user subjects from examples/ load; a faulty user guest is a FAILURE with exit 5', async () => {
    const r = await run(['--guest', './examples/my-guest.js', '--toolstack', 'deep-tracking', '--scenario', 'p2m-growth', '--arch', 'x86_64', '--jobs', '1', '--reporter', 'json']);
    expect(r.code).to.equal(5);
    const doc = JSON.parse(r.out) as { results: { verdict: string; outcome: string; rules_violated: string[]; expected: unknown }[] };
    expect(doc.results[0]).to.deep.include({ verdict: 'FAILURE', outcome: 'rule-violation', expected: null });
    const t = await run(['--toolstack', './examples/my-toolstack.js', '--guest', 'linear', '--scenario', 'quiet', '--arch', 'x86_64', '--jobs', '1']);
    expect(t.code).to.equal(0);
  });

  it('runs cells on worker threads (--jobs 2) with the same results as in-process', async () => {
    const args = ['--scenario', 'quiet', '--scenario', 'p2m-growth', '--guest', 'linear', '--toolstack', 'abort-on-change', '--arch', 'x86_64', '--reporter', 'json'];
    const a = JSON.parse((await run([...args, '--jobs', '2'])).out) as { results: { id: string; verdict: string; outcome: string }[] };
    const b = JSON.parse((await run([...args, '--jobs', '1'])).out) as typeof a;
    expect(a.results.map((r) => [r.id, r.verdict, r.outcome])).to.deep.equal(b.results.map((r) => [r.id, r.verdict, r.outcome]));
  });

  it('--record DIR writes the cell\'s guest trace as JSON Lines, in which check-trace finds the same rules', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xenabi-conf-'));
    try {
      const r = await run(['--scenario', 'p2m-growth', '--guest', 'skip-bump', '--toolstack', 'deep-tracking', '--arch', 'x86_64', '--jobs', '1', '--record', dir, '--reporter', 'json']);
      expect(r.code).to.equal(0);
      const cell = (JSON.parse(r.out) as { results: { id: string; rules_violated: string[] }[] }).results[0]!;
      const file = join(dir, `${cell.id}.jsonl`);
      expect(existsSync(file)).to.equal(true);
      for (const line of readFileSync(file, 'utf8').trim().split('\n')) JSON.parse(line);
      const checked = checkTraceFile(file);
      expect(checked.reports.map((x) => x.rule.id)).to.deep.equal(cell.rules_violated.filter((id) => id.startsWith('G-')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
