/**
 * The layout oracle: every struct, field and constant of abi/ against gcc compiling Xen's public
 * headers, for x86_32 (-m32) and x86_64 (-m64). The committed fixture is always checked; the live
 * compile runs wherever the compiler and headers exist, and must run in CI.
 */

import { expect } from 'chai';
import {
  ABI_CONSTANTS,
  ABI_STRUCTS,
  GNTTABOP_error_msgs,
  GUEST_ABIS,
  PROBE_PACKAGES,
  ProbeError,
  compareWithOracle,
  compilerVersion,
  defineStruct,
  field,
  formatMismatch,
  generateProbe,
  runProbe,
  uint32_t,
  type ProbeResult,
} from '../../abi/index.js';
import { readOracleFixture } from './oracle-fixture.js';

const fixture = readOracleFixture();

function failures(abiName: 'x86_32' | 'x86_64', oracle: ProbeResult): string[] {
  const abi = GUEST_ABIS.find((a) => a.name === abiName)!;
  return compareWithOracle(abi, ABI_STRUCTS, ABI_CONSTANTS, oracle, GNTTABOP_error_msgs).mismatches.map(formatMismatch);
}

describe('layout oracle', function () {
  describe('against the committed compiler fixture', function () {
    for (const abi of GUEST_ABIS) {
      it(`every ${abi.name} struct, field and constant matches`, function () {
        const report = compareWithOracle(abi, ABI_STRUCTS, ABI_CONSTANTS, fixture.abis[abi.name], GNTTABOP_error_msgs);
        expect(report.mismatches.map(formatMismatch)).to.deep.equal([]);
        expect(report.structs).to.equal(ABI_STRUCTS.length);
        expect(report.fields).to.be.greaterThan(report.structs);
      });
    }

    it('records how it was made', function () {
      expect(fixture.regenerate).to.equal('npm run oracle:regen');
      expect(fixture.compiler).to.match(/gcc/i);
      expect(fixture.headers).to.match(/^libxen-dev /);
    });
  });

  describe('the comparison can fail', function () {
    const abi = GUEST_ABIS[1]!;
    const good = fixture.abis.x86_64;
    const clone = (): ProbeResult => JSON.parse(JSON.stringify(good)) as ProbeResult;

    it('reports a moved field with both offsets in hex', function () {
      const bad = clone();
      bad.structs['shared_info']!.fields['arch']![0] += 8;
      expect(failures('x86_64', bad)).to.deep.equal([
        `Fail: offsetof(shared_info, arch) (x86_64), expected 0x${(good.structs['shared_info']!.fields['arch']![0] + 8).toString(16)}, got 0x${good.structs['shared_info']!.fields['arch']![0].toString(16)}`,
      ]);
    });

    it('reports a wrong struct size, a field the kit lacks and a wrong constant', function () {
      const bad = clone();
      bad.structs['vcpu_info']!.size += 4;
      bad.structs['vcpu_info']!.fields['extra'] = [64, 4];
      const [name] = Object.keys(bad.constants);
      bad.constants[name!] = '12345';
      const found = failures('x86_64', bad);
      expect(found).to.have.length(3);
      expect(found[0]).to.match(/^Fail: sizeof\(vcpu_info\) \(x86_64\), expected \d+, got 64$/);
      expect(found[1]).to.equal('Fail: vcpu_info.extra (x86_64), expected a field of the kit, got absent from abi/');
      expect(found[2]).to.match(/, expected 12345, got /);
    });

    it('reports an oracle for the wrong ABI', function () {
      expect(compareWithOracle(abi, ABI_STRUCTS, ABI_CONSTANTS, fixture.abis.x86_32).mismatches.length).to.be.greaterThan(0);
    });
  });

  describe('probe failures are one-line ProbeErrors', function () {
    it('names the Debian packages when the compiler is missing', function () {
      const run = () => runProbe({ abi: GUEST_ABIS[1]!, structs: [], constants: [], cc: '/nonexistent/cc' });
      expect(run).to.throw(ProbeError, /cannot run C compiler '\/nonexistent\/cc'.*install Debian packages: gcc gcc-multilib libxen-dev/);
      try {
        run();
      } catch (e) {
        expect((e as ProbeError).reason).to.equal('no-compiler');
        expect((e as ProbeError).message).not.to.contain('\n');
      }
    });

    it('reports the first compiler error when a struct is not in the headers', function () {
      if (!compilerVersion()) this.skip();
      const bogus = defineStruct({ name: 'no_such_xen_struct', header: 'test', doc: 'absent', fields: [field('a', uint32_t, 'a')] });
      try {
        runProbe({ abi: GUEST_ABIS[1]!, structs: [bogus], constants: [] });
        expect.fail('the probe compiled a struct Xen does not define');
      } catch (e) {
        if (!(e instanceof ProbeError) || e.reason !== 'compile') throw e;
        expect(e.message).to.match(/^probe for x86_64 does not compile: .*no_such_xen_struct/);
        expect(e.message).not.to.contain('\n');
      }
    });

    it('generates a probe that prints every field of every struct', function () {
      const source = generateProbe(GUEST_ABIS[0]!, ABI_STRUCTS, ABI_CONSTANTS);
      for (const s of ABI_STRUCTS) {
        expect(source).to.contain(`sizeof(${s.kind} ${s.name})`);
        for (const f of s.layout(GUEST_ABIS[0]!).all) expect(source).to.contain(`FIELD(${s.kind} ${s.name}, ${f.path},`);
      }
    });
  });

  describe('live: gcc against the installed Xen headers', function () {
    for (const abi of GUEST_ABIS) {
      it(`${abi.name} (gcc ${abi.gccFlag}) matches abi/ and the committed fixture`, function () {
        let live: ProbeResult;
        try {
          live = runProbe({ abi, structs: ABI_STRUCTS, constants: ABI_CONSTANTS });
        } catch (e) {
          if (!(e instanceof ProbeError) || e.reason === 'compile' || e.reason === 'run') throw e;
          if (process.env.CI === 'true') {
            throw new Error(`oracle unavailable in CI (${e.message}); .ci/run must install ${PROBE_PACKAGES}`);
          }
          console.log(`      skipped: ${e.message}`);
          this.skip();
        }
        expect(failures(abi.name, live)).to.deep.equal([]);
        expect(live, 'the committed fixture is stale: run npm run oracle:regen').to.deep.equal(fixture.abis[abi.name]);
      });
    }
  });
});
