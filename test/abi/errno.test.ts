/**
 * abi/errno.ts: errno names for values as Xen returns them, the groups' C spellings, and the
 * two hypervisor-internal errnos that the guest-side layout probe cannot see.
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constantCExpr } from '../../abi/constants.js';
import {
  EAGAIN,
  EDEADLK,
  EDEADLOCK,
  EINTR,
  EINVAL,
  ENOSYS,
  EPERM,
  ERANGE,
  ERESTART,
  ERRNO_CONSTANTS,
  ERRNO_XEN_INTERNAL_CONSTANTS,
  EWOULDBLOCK,
  errnoName,
} from '../../abi/errno.js';

describe('abi/errno', function () {
  describe('errnoName', function () {
    it('names a hypercall result (-errno) and a positive errno alike', function () {
      expect(errnoName(-EINVAL)).to.equal('EINVAL');
      expect(errnoName(EINVAL)).to.equal('EINVAL');
      expect(errnoName(-ENOSYS)).to.equal('ENOSYS');
      expect(errnoName(-EPERM)).to.equal('EPERM');
      expect(errnoName(ERANGE)).to.equal('ERANGE');
    });

    it('gives the primary name where two names share a value', function () {
      expect(EWOULDBLOCK).to.equal(EAGAIN);
      expect(EDEADLOCK).to.equal(EDEADLK);
      expect(errnoName(-11)).to.equal('EAGAIN');
      expect(errnoName(35)).to.equal('EDEADLK');
    });

    it('names the Xen-internal errnos too', function () {
      expect(errnoName(-ERESTART)).to.equal('ERESTART');
      expect(errnoName(EINTR)).to.equal('EINTR');
    });

    it('says "errno <value>" for anything else, keeping the sign it was given', function () {
      expect(errnoName(999)).to.equal('errno 999');
      expect(errnoName(-999)).to.equal('errno -999');
      expect(errnoName(0)).to.equal('errno 0');
      expect(errnoName(15)).to.equal('errno 15');
    });
  });

  describe('constant groups', function () {
    it('spell every name as errno.h does: XEN_<NAME>', function () {
      for (const group of [ERRNO_CONSTANTS, ERRNO_XEN_INTERNAL_CONSTANTS]) {
        for (const name of Object.keys(group.values)) {
          expect(constantCExpr(group, name), name).to.equal(`XEN_${name}`);
        }
      }
    });

    it('keep the __XEN__-only errnos out of the group a guest-side probe compiles', function () {
      expect(ERRNO_CONSTANTS.values).to.not.have.any.keys('EINTR', 'ERESTART');
      expect(ERRNO_XEN_INTERNAL_CONSTANTS.values).to.deep.equal({ EINTR: 4, ERESTART: 85 });
      expect(ERRNO_CONSTANTS.values).to.include({ EWOULDBLOCK: 11, EDEADLOCK: 35 });
    });

    it('the __XEN__-only errnos match errno.h compiled on its own with __XEN__ (gcc)', function () {
      const dir = mkdtempSync(join(tmpdir(), 'xenabi-errno-'));
      try {
        const names = Object.keys(ERRNO_XEN_INTERNAL_CONSTANTS.values);
        const source = [
          '#include <stdio.h>',
          '#define __XEN__',
          '#include <xen/errno.h>',
          'int main(void)',
          '{',
          ...names.map((n) => `    printf("%s %d\\n", "${n}", (int)${constantCExpr(ERRNO_XEN_INTERNAL_CONSTANTS, n)});`),
          '    return 0;',
          '}',
        ].join('\n');
        writeFileSync(join(dir, 'errno.c'), source);
        const built = spawnSync(process.env.CC ?? 'gcc', [join(dir, 'errno.c'), '-o', join(dir, 'errno')], { encoding: 'utf8' });
        if (built.error || /xen\/errno\.h: No such file/.test(built.stderr ?? '')) this.skip();
        expect(built.status, built.stderr).to.equal(0);
        const ran = spawnSync(join(dir, 'errno'), [], { encoding: 'utf8' });
        const compiled = Object.fromEntries(
          ran.stdout.trim().split('\n').map((line) => {
            const [name, value] = line.split(' ');
            return [name, Number(value)];
          }),
        );
        expect(compiled).to.deep.equal(ERRNO_XEN_INTERNAL_CONSTANTS.values);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
