/**
 * `xenabi check-trace FILE [--json]`, run in process through `main`: a clean trace exits 0 with
 * "no violations"; one breaking G-ELEM-01 exits 1 naming the rule, its title and the trace lines
 * (text and JSON); malformed or unreadable traces exit 2 with one error line naming the line.
 */

import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inProcess } from '../support/cli.js';



const HEADER = '{"format":"xenabi-trace","version":1,"abi":"x86_32","domid":2,"guest":"hand-written"}';

/** An x86_32 guest with 1024 pfns on mfns 32.. that balloons pfn 7 out and back in, storing the entry with `store`. */
function trace(store: string[]): string {
  return [
    HEADER,
    '{"type":"state","phase":"running","start_info_flags":16,"shared":{"max_pfn":"0x400","pfn_to_mfn_frame_list_list":"0xffffffff","p2m_cr3":"0x14000","p2m_vaddr":"0x80000000","p2m_generation":"0x2"},"owned":[[32,1024]],"xen_heap":[3],"m2p":[[32,0,1024]]}',
    '{"type":"list","vaddr":"0x80000000","extent":256,"pages":[[0,1000,1,0]]}',
    '{"type":"p2m","first":0,"count":1024,"entries":[[0,"0x20",1024,1]]}',
    '{"type":"quiescent","reason":"attached"}',
    '{"type":"op","phase":"start","name":"balloon-out"}',
    '{"type":"p2m_store","pfn":7,"offset":0,"width":4,"value":"0xffffffff"}',
    '{"type":"m2p","mfn":39,"pfn":null}',
    '{"type":"frame","mfn":39,"owned":false}',
    '{"type":"op","phase":"end","name":"balloon-out"}',
    '{"type":"quiescent","reason":"end of balloon-out"}',
    '{"type":"op","phase":"start","name":"balloon-in"}',
    '{"type":"frame","mfn":39,"owned":true}',
    '{"type":"m2p","mfn":39,"pfn":7}',
    ...store,
    '{"type":"op","phase":"end","name":"balloon-in"}',
    '{"type":"quiescent","reason":"end of balloon-in"}',
    '',
  ].join('\n');
}

const CLEAN = trace(['{"type":"p2m_store","pfn":7,"offset":0,"width":4,"value":"0x27"}']);
const TORN = trace(['{"type":"p2m_store","pfn":7,"offset":0,"width":2,"value":"0x27"}', '{"type":"p2m_store","pfn":7,"offset":2,"width":2,"value":"0x0"}']);

describe('cli: xenabi check-trace', () => {
  let dir = '';
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'xenabi-check-trace-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a clean trace: exit 0, "no violations"', async () => {
    const path = file('clean.jsonl', CLEAN);
    const r = await inProcess('check-trace', path);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.equal(`${path}: x86_32 domain 2 (hand-written), 16 events: no violations\n`);
  });

  it('a torn element store: exit 1, the rule id, title, lines and messages', async () => {
    const path = file('torn.jsonl', TORN);
    const r = await inProcess('check-trace', path);
    expect(r.status).to.equal(1);
    expect(r.stdout.split('\n')).to.deep.equal([
      `${path}: x86_32 domain 2 (hand-written), 17 events: 2 violations of 1 rule`,
      'G-ELEM-01  p2m elements are written with one store of the guest word (2)',
      '  line 15: Fail: store into p2m[0x7] at byte 0 of the element, expected one aligned 4-byte store, got 2 bytes',
      '  line 16: Fail: store into p2m[0x7] at byte 2 of the element, expected one aligned 4-byte store, got 2 bytes',
      '',
    ]);
  });

  it('--json: the same result as JSON, exit 1', async () => {
    const r = await inProcess('check-trace', file('torn2.jsonl', TORN), '--json');
    expect(r.status).to.equal(1);
    const out = JSON.parse(r.stdout) as { total: number; events: number; rules: { id: string; count: number }[]; violations: { rule: string; title: string; line: number; message: string; pfn: number }[] };
    expect(out.total).to.equal(2);
    expect(out.events).to.equal(17);
    expect(out.rules.map((x) => [x.id, x.count])).to.deep.equal([['G-ELEM-01', 2]]);
    expect(out.violations.map((v) => [v.rule, v.line, v.pfn])).to.deep.equal([
      ['G-ELEM-01', 15, 7],
      ['G-ELEM-01', 16, 7],
    ]);
    expect(out.violations[0]!.title).to.equal('p2m elements are written with one store of the guest word');
    const clean = await inProcess('check-trace', file('clean2.jsonl', CLEAN), '--json');
    expect(clean.status).to.equal(0);
    expect(JSON.parse(clean.stdout)).to.include({ total: 0 });
  });

  const malformed: [string, string, RegExp][] = [
    ['bad JSON', CLEAN.replace('{"type":"m2p","mfn":39,"pfn":7}', '{"type":"m2p",'), /line 14: not JSON/],
    ['an unknown event', CLEAN.replace('{"type":"quiescent","reason":"attached"}', '{"type":"nap"}'), /line 5: unknown event type "nap"/],
    ['a missing field', CLEAN.replace('"offset":0,"width":4,"value":"0xffffffff"', '"offset":0,"width":4'), /line 7: p2m_store event: missing field "value"/],
    ['a wrong version', CLEAN.replace('"version":1', '"version":7'), /line 1: header: unsupported version 7/],
  ];
  for (const [what, text, expected] of malformed) {
    it(`a trace with ${what}: exit 2, one error line with the line number`, async () => {
      const path = file(`${what.replace(/ /g, '-')}.jsonl`, text);
      const r = await inProcess('check-trace', path);
      expect(r.status).to.equal(2);
      expect(r.stdout).to.equal('');
      expect(r.stderr).to.match(/^xenabi: error: malformed trace [^\n]+\n$/);
      expect(r.stderr).to.match(expected);
    });
  }

  it('a missing file or a bad option: exit 2, one line', async () => {
    const missing = await inProcess('check-trace', join(dir, 'nope.jsonl'));
    expect(missing.status).to.equal(2);
    expect(missing.stderr).to.match(/^xenabi: error: cannot read trace .*nope\.jsonl: ENOENT[^\n]*\n$/);
    const bad = await inProcess('check-trace', file('c3.jsonl', CLEAN), '--yaml');
    expect(bad.status).to.equal(2);
    expect(bad.stderr).to.match(/^xenabi: error: unknown option '--yaml'/);
  });
});
