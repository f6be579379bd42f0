/**
 * Seeded fuzzing of the stream reader with mutated streams: bit flips, overwritten bytes and length
 * fields, cuts, insertions, deletions, duplicated and swapped records, on valid streams of both
 * ABIs, v2 and v3, plain and checkpointed. Every case must end in success or a typed StreamError
 * (never another exception, never a hang), and the same way whether the input arrives in one chunk
 * or many. A fast-check property adds arbitrary bytes after valid headers.
 *
 *   XENABI_FUZZ_SEED=<n>     seed (default fixed, printed)
 *   XENABI_FUZZ_CASES=<n>    mutated streams per run (default 3000)
 *   XENABI_FUZZ_CASE=<k>     replay one case only
 */

import { expect } from 'chai';
import fc from 'fast-check';
import { X86_32, X86_64 } from '../../abi/index.js';
import { Rng } from '../../xen-emu/rng.js';
import { REC_LENGTH_MAX, StreamError, StreamParser, readStream, type ReadOptions } from '../../toolstack/index.js';
import { concat, rawHeaders, rawStream, sampleStream } from './support/streams.js';

const DEFAULT_SEED = 20261126;
const seed = Number(process.env['XENABI_FUZZ_SEED'] ?? DEFAULT_SEED);
const cases = Number(process.env['XENABI_FUZZ_CASES'] ?? 3000);
const only = process.env['XENABI_FUZZ_CASE'] === undefined ? undefined : Number(process.env['XENABI_FUZZ_CASE']);
const REPLAY = 'npx mocha --no-config --node-option import=tsx/esm --extension ts test/toolstack/stream-fuzz.test.ts';

interface Base {
  readonly name: string;
  readonly bytes: Buffer;
  readonly options: ReadOptions;
  /** Stream offsets of its records (for mutations that aim at record headers). */
  readonly records: readonly { offset: number; length: number }[];
}

function bases(): Base[] {
  const made: [string, Buffer, ReadOptions][] = [
    ['v3 x86_64', sampleStream({ abi: X86_64, fullVcpu: true }), {}],
    ['v3 x86_32 bytes', sampleStream({ abi: X86_32, bytes: true, fullVcpu: false }), {}],
    ['v2 x86_32', sampleStream({ abi: X86_32, version: 2 }), {}],
    ['remus x86_64', sampleStream({ abi: X86_64, checkpoints: 3, end: false }), { streamType: 'checkpointed' }],
    ['small raw x86_32', rawStream(X86_32, []), { strictReserved: false }],
  ];
  return made.map(([name, bytes, options]) => ({ name, bytes, options, records: readStream(bytes, options).records.map((r) => ({ offset: r.offset, length: r.length })) }));
}

const INTERESTING_U32 = [0, 1, 7, 8, 9, 15, 16, 24, 4096, 4104, 0x7fffffff, 0x80000000, REC_LENGTH_MAX, REC_LENGTH_MAX + 1, 0xffffffff];

/** One mutation of `bytes`, described for the failure message. */
function mutate(rng: Rng, base: Base): { bytes: Buffer; what: string } {
  const b = Buffer.from(base.bytes);
  const at = (): number => rng.below(b.length);
  const rec = (): { offset: number; length: number } => rng.pick(base.records);
  const kind = rng.below(9);
  switch (kind) {
    case 0: {
      const flips: number[] = [];
      for (let i = rng.int(1, 8); i > 0; i--) {
        const bit = rng.below(b.length * 8);
        b[bit >> 3]! ^= 1 << (bit & 7);
        flips.push(bit);
      }
      return { bytes: b, what: `flip bits ${flips.join(',')}` };
    }
    case 1: {
      const i = at();
      const v = rng.pick([0, 0xff, rng.below(256)]);
      b[i] = v;
      return { bytes: b, what: `byte ${i} = ${v}` };
    }
    case 2: {
      const r = rec();
      const field = rng.pick([0, 4]);
      const v = rng.chance(0.5) ? rng.pick(INTERESTING_U32) : (b.readUInt32LE(r.offset + field) + rng.int(-9, 9)) >>> 0;
      b.writeUInt32LE(v, r.offset + field);
      return { bytes: b, what: `record at ${r.offset}: ${field === 0 ? 'type' : 'body_length'} = ${v}` };
    }
    case 3: {
      const r = rec();
      const within = r.offset + 8 + rng.below(Math.max(1, Math.min(r.length, 64)));
      const v = rng.pick(INTERESTING_U32);
      if (within + 4 <= b.length) b.writeUInt32LE(v, within);
      return { bytes: b, what: `u32 at ${within} (body of record at ${r.offset}) = ${v}` };
    }
    case 4: {
      const n = rng.below(b.length);
      return { bytes: b.subarray(0, n), what: `cut at ${n}` };
    }
    case 5: {
      const i = at();
      const extra = Buffer.alloc(rng.int(1, 24));
      for (let k = 0; k < extra.length; k++) extra[k] = rng.below(256);
      return { bytes: concat(b.subarray(0, i), extra, b.subarray(i)), what: `insert ${extra.length} bytes at ${i}` };
    }
    case 6: {
      const i = at();
      const n = rng.int(1, 64);
      return { bytes: concat(b.subarray(0, i), b.subarray(i + n)), what: `delete ${n} bytes at ${i}` };
    }
    case 7: {
      const r = rec();
      const span = b.subarray(r.offset, r.offset + 8 + Math.ceil(r.length / 8) * 8);
      const to = rng.pick(base.records).offset;
      return { bytes: concat(b.subarray(0, to), span, b.subarray(to)), what: `duplicate record at ${r.offset} before ${to}` };
    }
    default: {
      const [x, y] = [rec(), rec()].sort((p, q) => p.offset - q.offset) as [{ offset: number; length: number }, { offset: number; length: number }];
      if (x.offset === y.offset) return { bytes: b, what: 'unchanged' };
      const end = (r: { offset: number; length: number }): number => r.offset + 8 + Math.ceil(r.length / 8) * 8;
      return {
        bytes: concat(b.subarray(0, x.offset), b.subarray(y.offset, end(y)), b.subarray(end(x), y.offset), b.subarray(x.offset, end(x)), b.subarray(end(y))),
        what: `swap records at ${x.offset} and ${y.offset}`,
      };
    }
  }
}

type Outcome = { ok: true; records: number } | { ok: false; error: StreamError };

/** Reads one way; anything but success or a StreamError escapes. */
function outcome(read: () => number): Outcome {
  try {
    return { ok: true, records: read() };
  } catch (e) {
    if (e instanceof StreamError) return { ok: false, error: e };
    throw e;
  }
}

function describeOutcome(o: Outcome): string {
  return o.ok ? `ok, ${o.records} records` : `${o.error.name} ${o.error.code} ${o.error.record}.${o.error.field} @${o.error.offset}`;
}

describe(`stream reader fuzz (seed ${seed}, replay: XENABI_FUZZ_SEED=${seed} [XENABI_FUZZ_CASE=<k>] ${REPLAY})`, function () {
  this.timeout(120_000);

  it(`${only === undefined ? cases : 1} mutated streams end in success or a typed StreamError, the same in one chunk or many`, function () {
    const all = bases();
    let typed = 0;
    let okCount = 0;
    const codes = new Set<string>();
    // Each case gets its own seed from one master sequence, so case k replays alone.
    const master = new Rng(seed);
    const caseSeeds = Array.from({ length: only === undefined ? cases : only + 1 }, () => master.u32());
    for (let k = only ?? 0; k < caseSeeds.length; k++) {
      const rng = new Rng(caseSeeds[k]!);
      const base = rng.pick(all);
      const { bytes, what } = mutate(rng, base);
      const options: ReadOptions = { ...base.options, ...(rng.chance(0.2) ? { strictReserved: false } : {}) };
      const context = `case ${k} (${base.name}: ${what}); replay: XENABI_FUZZ_SEED=${seed} XENABI_FUZZ_CASE=${k} ${REPLAY}`;
      const started = Date.now();
      let whole: Outcome;
      let pieces: Outcome;
      try {
        whole = outcome(() => readStream(bytes, options).records.length);
        pieces = outcome(() => {
          const parser = new StreamParser(options);
          let n = 0;
          for (let i = 0; i < bytes.length; ) {
            const len = 1 + rng.below(9000);
            n += parser.push(bytes.subarray(i, i + len)).filter((it) => it.kind === 'record').length;
            i += len;
          }
          parser.end();
          return n;
        });
      } catch (e) {
        expect.fail(`${context}: an exception that is not a StreamError: ${(e as Error).stack ?? String(e)}`);
      }
      expect(Date.now() - started, `${context}: took too long`).to.be.below(5000);
      expect(describeOutcome(pieces), `${context}: chunked reading differs`).to.equal(describeOutcome(whole));
      if (whole.ok) okCount++;
      else {
        typed++;
        codes.add(whole.error.code);
        expect(whole.error.offset, context).to.be.within(0, bytes.length);
        expect(whole.error.message, context).to.match(/at stream offset 0x[0-9a-f]+: /);
      }
    }
    if (only === undefined) {
      console.log(`      fuzz seed ${seed}: ${typed} typed errors (${[...codes].sort().join(', ')}), ${okCount} accepted`);
      // The mutations must reach deep into the reader, not stop at the headers.
      expect(codes.size, 'distinct error codes reached').to.be.at.least(10);
    }
  });

  it('arbitrary bytes after valid headers (fast-check, same seed)', function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (tail, strict) => {
        const bytes = concat(rawHeaders(), tail);
        try {
          readStream(bytes, { strictReserved: strict });
        } catch (e) {
          if (!(e instanceof StreamError)) throw e;
        }
      }),
      { seed, numRuns: 2000 },
    );
  });
});
