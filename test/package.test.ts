/**
 * The package as a user installs it: `exports` resolve to built JavaScript with type declarations,
 * and the `xenabi` bin runs. `npm test` builds dist/ before mocha runs.
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string } | string>;
};

describe('package', function () {
  it('is the ESM package xen-pv-abi-kit with a xenabi bin', function () {
    expect(pkg.name).to.equal('xen-pv-abi-kit');
    expect(pkg.bin).to.have.property('xenabi');
  });

  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue;
    it(`exports ${subpath} with type declarations`, function () {
      expect(existsSync(new URL(`../${target.default}`, import.meta.url)), target.default).to.equal(true);
      expect(existsSync(new URL(`../${target.types}`, import.meta.url)), target.types).to.equal(true);
    });
  }

  it('resolves its own name to the built ABI layer', async function () {
    // A variable specifier, so the type check does not depend on dist/ existing.
    const specifier = 'xen-pv-abi-kit/abi';
    const abi = (await import(specifier)) as typeof import('../abi/index.js');
    expect(abi.shared_info.sizeOf(abi.X86_64)).to.equal(
      (await import('../abi/index.js')).shared_info.sizeOf(abi.X86_64),
    );
    expect(abi.ABI_STRUCTS.length).to.be.greaterThan(20);
  });

  it('runs the built bin: xenabi --version prints the package version', function () {
    const r = spawnSync(process.execPath, [pkg.bin['xenabi']!, '--version'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal(pkg.version);
  });
});
