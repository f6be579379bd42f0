/**
 * The trace format: events survive formatLine → parseTrace exactly; malformed lines are
 * TraceFormatErrors naming the 1-based line; a small hand-written trace that breaks one rule gives
 * exactly that rule, at the lines of the offending events.
 */

import { expect } from 'chai';
import { checkTraceText, formatLine, parseTrace, TraceFormatError, type TraceEvent, type TraceHeader } from '../../conformance/trace/index.js';

const HEADER = '{"format":"xenabi-trace","version":1,"abi":"x86_64","domid":1,"source":"hand-written"}';

/**
 * A linear x86_64 guest with 512 pfns on mfns 16.. (mfn 16+i backs pfn i), its list of one page in
 * mfn 516 (pfn 500); it balloons pfn 3 out, grows the list by a page inside a generation bracket,
 * then balloons pfn 3 back in — with `elementStores` as the stores of the new entry.
 */
function handTrace(elementStores: string[]): string {
  return [
    HEADER,
    '{"type":"state","phase":"running","start_info_flags":16,"shared":{"max_pfn":"0x200","pfn_to_mfn_frame_list_list":"0xffffffffffffffff","p2m_cr3":"0x14000","p2m_vaddr":"0xffffc90000000000","p2m_generation":"0x0"},"owned":[[16,512]],"xen_heap":[5],"m2p":[[16,0,512]]}',
    '{"type":"list","vaddr":"0xffffc90000000000","extent":2,"pages":[[0,516,1,0]]}',
    '{"type":"p2m","first":0,"count":1024,"entries":[[0,"0x10",512,1]]}',
    '{"type":"quiescent","reason":"attached"}',
    '{"type":"op","phase":"start","name":"balloon-out"}',
    '{"type":"p2m_store","pfn":3,"offset":0,"width":8,"value":"0xffffffffffffffff"}',
    '{"type":"m2p","mfn":19,"pfn":null}',
    '{"type":"frame","mfn":19,"owned":false}',
    '{"type":"op","phase":"end","name":"balloon-out"}',
    '{"type":"quiescent","reason":"end of balloon-out"}',
    '{"type":"shared","field":"p2m_generation","value":"0x1"}',
    '{"type":"pt_write","level":1,"mfn":517,"entry":1,"value":"0x20b063","remap":[[1,"unmapped",523]]}',
    '{"type":"shared","field":"p2m_generation","value":"0x2"}',
    '{"type":"op","phase":"start","name":"balloon-in"}',
    '{"type":"frame","mfn":19,"owned":true}',
    '{"type":"m2p","mfn":19,"pfn":3}',
    ...elementStores,
    '{"type":"op","phase":"end","name":"balloon-in"}',
    '{"type":"quiescent","reason":"end of balloon-in"}',
  ].join('\n');
}

const ATOMIC = ['{"type":"p2m_store","pfn":3,"offset":0,"width":8,"value":"0x13"}'];
const TORN = ['{"type":"p2m_store","pfn":3,"offset":0,"width":4,"value":"0x13"}', '{"type":"p2m_store","pfn":3,"offset":4,"width":4,"value":"0x0"}'];

function formatError(text: string): TraceFormatError {
  try {
    parseTrace(text);
  } catch (err) {
    expect(err).to.be.instanceOf(TraceFormatError);
    return err as TraceFormatError;
  }
  throw new Error('expected a TraceFormatError');
}

describe('conformance: trace format', () => {
  it('every event kind survives formatLine and parseTrace exactly (64-bit values in hex)', () => {
    const header: TraceHeader = { format: 'xenabi-trace', version: 1, abi: 'x86_64', domid: 3, guest: 'linear', seed: 9 };
    const events: TraceEvent[] = [
      { type: 'state', phase: 'booting', start_info_flags: 16, shared: { max_pfn: 0x1000n, pfn_to_mfn_frame_list_list: 0xffffffffffffffffn, p2m_cr3: 0n, p2m_vaddr: 0n, p2m_generation: 0n }, owned: [[1, 4096]], xen_heap: [0], m2p: [[1, 0, 4096]] },
      { type: 'shared', field: 'p2m_cr3', value: 0x14000n },
      { type: 'p2m', first: 0, count: 512, entries: [[0, 0x8000000000000abcn, 2, 1]] },
      { type: 'p2m_store', pfn: 7, offset: 4, width: 4, value: 0xffffffffn, by: 'xen' },
      { type: 'list', vaddr: 0xffffc90000000000n, extent: 262144, pages: [[0, 0x41c, 3, 1], [3, -2, 1, 0]], error: 'x' },
      { type: 'pt_write', level: 2, mfn: 0x40, entry: 5, value: 0x8000000000041067n, remap: [[5, -1, 0x41], [6, 0x41, -2]] },
      { type: 'tree', full: false, pages: [[10, 0x500, 1, 0]] },
      { type: 'm2p', mfn: 19, pfn: null },
      { type: 'm2p', mfn: 19, pfn: 3 },
      { type: 'frame', mfn: 19, owned: true, xen_heap: true },
      { type: 'op', phase: 'start', name: 'exchange' },
      { type: 'quiescent', reason: 'end of exchange' },
      { type: 'published', reason: 'resume' },
      { type: 'suspended' },
      { type: 'resumed' },
    ];
    const text = [header, ...events].map(formatLine).join('\n') + '\n';
    const parsed = parseTrace(text);
    expect(parsed.header).to.deep.equal(header);
    expect(parsed.events.map((e) => e.event)).to.deep.equal(events);
    expect(parsed.events.map((e) => e.line)).to.deep.equal(events.map((_e, i) => i + 2));
    expect(text).to.contain('"value":"0x8000000000041067"');
    expect(text).to.contain('[6,65,"large"]');
  });

  it('malformed lines are TraceFormatErrors naming the 1-based line, in one line', () => {
    const cases: [string, number, RegExp][] = [
      [`${HEADER}\n{"type":"op","phase":"start","name":"x"}\n{"type": nope}`, 3, /not JSON/],
      [`${HEADER}\n\n{"type":"teleport"}`, 3, /unknown event type "teleport" \(valid: state, /],
      [`${HEADER}\n{"type":"p2m_store","pfn":1,"offset":0,"width":8}`, 2, /p2m_store event: missing field "value"/],
      [`${HEADER}\n{"type":"p2m_store","pfn":1,"offset":0,"width":4,"value":"0x100000000"}`, 2, /does not fit 4 bytes/],
      [`${HEADER}\n{"type":"m2p","mfn":-1,"pfn":null}`, 2, /"mfn" must be an integer >= 0/],
      [`${HEADER}\n{"type":"shared","field":"nmi_reason","value":"0x1"}`, 2, /"field" is "nmi_reason" \(valid: max_pfn, /],
      ['{"format":"xenabi-trace","version":2,"abi":"x86_64","domid":1}', 1, /unsupported version 2/],
      ['{"format":"other","version":1,"abi":"x86_64","domid":1}', 1, /"format" must be "xenabi-trace"/],
      ['{"format":"xenabi-trace","version":1,"abi":"arm","domid":1}', 1, /"abi" is "arm"/],
      ['', 1, /empty trace/],
      ['[1,2]', 1, /expected a JSON object/],
    ];
    for (const [text, line, problem] of cases) {
      const err = formatError(text);
      expect(err.line, text).to.equal(line);
      expect(err.message).to.match(new RegExp(`^line ${line}: `));
      expect(err.message).to.match(problem);
      expect(err.message).to.not.contain('\n');
    }
  });

  it('a hand-written trace whose stores are atomic breaks no rule', () => {
    const r = checkTraceText(handTrace(ATOMIC));
    expect(r.events).to.equal(19);
    expect(r.violations).to.deep.equal([]);
  });

  it('the same trace with the entry stored in two halves breaks exactly G-ELEM-01, at those two lines', () => {
    const r = checkTraceText(handTrace(TORN));
    expect(r.reports.map((x) => x.rule.id)).to.deep.equal(['G-ELEM-01']);
    expect(r.total).to.equal(2);
    expect(r.violations.map((v) => v.line)).to.deep.equal([18, 19]);
    expect(r.violations[0]!.message).to.equal('Fail: store into p2m[0x3] at byte 0 of the element, expected one aligned 8-byte store, got 4 bytes');
  });

  it('a generation left odd at rest breaks exactly G-GEN-01', () => {
    const text = handTrace(ATOMIC).replace('{"type":"shared","field":"p2m_generation","value":"0x2"}\n', '');
    const r = checkTraceText(text);
    expect(r.reports.map((x) => x.rule.id)).to.deep.equal(['G-GEN-01']);
    expect(r.violations[0]!.message).to.equal('Fail: p2m_generation at a quiescent point (end of balloon-in), expected even, got 1');
  });

  it('a balloon-in without its m2p update breaks exactly G-M2P-01', () => {
    const r = checkTraceText(handTrace(ATOMIC).replace('{"type":"m2p","mfn":19,"pfn":3}\n', ''));
    expect(r.reports.map((x) => x.rule.id)).to.deep.equal(['G-M2P-01']);
    expect(r.violations[0]!.message).to.equal('Fail: m2p of owned mfn 0x13 at a quiescent point (end of balloon-in), expected a pfn, got INVALID');
  });
});
