/**
 * Fuzzing the BTF reader and the kernel check: mutated BTF (raw and inside ELF) must either check or
 * be rejected with an InputFileError — never another exception, never a hang. Seeded: the seed is
 * printed with every failure, with the command that replays it.
 */

import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X86_64 } from '../../../abi/guest-abi.js';
import { checkBtf, InputFileError, loadKernelBtf } from '../../../abi/check/index.js';
import { buildElf, sampleBtf } from '../../support/btf-builder.js';
import { all, gccWithXenHeaders, paholeInstalled, requireOracle } from '../../support/oracle.js';
import { buildBtfObject, makeHeaderVariant } from '../../support/xen-fixtures.js';

const FILE = 'test/abi/check/btf-fuzz.test.ts';
const seed = process.env.XENABI_FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.XENABI_FUZZ_SEED);
const replay = `XENABI_FUZZ_SEED=${seed} npx mocha --no-config --node-option import=tsx/esm --extension ts ${FILE}`;

/** Interesting 32-bit values for counts, offsets and ids. */
const u32 = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 12, 24, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff), fc.nat());

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('word' as const), at: fc.nat(), value: u32 }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), value: fc.constant(0) }),
);

function mutate(base: Buffer, edits: readonly { kind: 'byte' | 'word' | 'cut'; at: number; value: number }[]): Buffer {
  let b = Buffer.from(base);
  for (const e of edits) {
    if (b.length === 0) break;
    const at = e.at % b.length;
    if (e.kind === 'byte') b[at] = e.value;
    else if (e.kind === 'word') {
      // Mostly aligned to records and header fields, where the numbers live.
      const w = at - (at % 4);
      if (w + 4 <= b.length) b.writeUInt32LE(e.value >>> 0, w);
    } else b = b.subarray(0, at);
  }
  return b;
}

/** Loads and checks; returns 'ok' or the error class; anything but InputFileError is rethrown. */
function loadAndCheck(bytes: Buffer): string {
  try {
    checkBtf(loadKernelBtf(bytes), { arch: 'x86_64' });
    return 'ok';
  } catch (e) {
    if (e instanceof InputFileError) {
      if (e.message.includes('\n')) throw new Error(`multi-line message: ${e.message}`);
      return e.name;
    }
    throw e;
  }
}

describe(`BTF reader fuzzing (seed ${seed})`, function () {
  this.timeout(30_000);
  const raw = sampleBtf().builder.build();
  const elf = buildElf([{ name: '.BTF', data: raw }]);

  const cases: { name: string; base: () => Buffer; runs: number; oracle?: boolean }[] = [
    { name: 'raw BTF', base: () => raw, runs: 1500 },
    { name: 'BTF in ELF64', base: () => elf, runs: 700 },
    { name: 'an object built by gcc and pahole -J from Xen\'s headers', base: () => realObject!, runs: 300, oracle: true },
  ];
  let realObject: Buffer | undefined;

  for (const { name, base: makeBase, runs, oracle } of cases) {
    it(`mutated ${name} checks or is rejected with an InputFileError, quickly`, function () {
      if (oracle && !realObject) {
        requireOracle(this, all(gccWithXenHeaders, paholeInstalled));
        const dir = mkdtempSync(join(tmpdir(), 'xenabi-fuzz-'));
        try {
          realObject = readFileSync(buildBtfObject(dir, makeHeaderVariant(dir, 'xen'), X86_64, 'fuzz'));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
      const base = makeBase();
      expect(loadAndCheck(base)).to.equal('ok');
      const outcomes = new Map<string, number>();
      try {
        fc.assert(
          fc.property(fc.array(mutation, { minLength: 1, maxLength: 6 }), (edits) => {
            const started = performance.now();
            const outcome = loadAndCheck(mutate(base, edits));
            outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
            // A hang guard, not a speed target (those live in the benchmarks): generous enough for
            // a loaded machine under coverage instrumentation, far below the test's timeout.
            const ms = performance.now() - started;
            if (ms > 5000) throw new Error(`took ${ms.toFixed(0)} ms`);
          }),
          { seed, numRuns: runs },
        );
      } catch (e) {
        throw new Error(`${(e as Error).message}\nseed ${seed}; replay with: ${replay}`);
      }
      // The mutations reach both outcomes, so the property is not vacuous.
      expect(outcomes.get('ok') ?? 0, JSON.stringify([...outcomes])).to.be.greaterThan(0);
      expect([...outcomes.keys()].filter((k) => k !== 'ok').length, JSON.stringify([...outcomes])).to.be.greaterThan(0);
    });
  }
});
