/**
 * Finding the BTF: ELF32 and ELF64 files (the `.BTF` section; malformed headers and section tables
 * rejected with the file offset), raw BTF, and compressed kernel images (a bzImage's payload or a
 * whole file; gzip by node:zlib, xz/lz4/zstd by the system tools, the rest refused with a line that
 * says how to get the uncompressed vmlinux).
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import {
  ElfFormatError,
  InputFileError,
  KernelImageError,
  loadKernelBtf,
  parseElf,
  unpackKernelImage,
} from '../../../abi/check/index.js';
import { buildElf, sampleBtf } from '../../support/btf-builder.js';

const btf = (): Buffer => sampleBtf().builder.build();

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    expect((e as Error).message).not.to.contain('\n');
    return e as Error;
  }
  return expect.fail('no error');
}

/** A fake bzImage: boot sector and setup header (protocol 2.15), then the payload. */
function bzImage(payload: Buffer, setupSects = 1): Buffer {
  const pmStart = (setupSects + 1) * 512;
  const out = Buffer.alloc(pmStart + 64 + payload.length);
  out[0x1f1] = setupSects;
  out.writeUInt16LE(0xaa55, 0x1fe);
  out.write('HdrS', 0x202, 'latin1');
  out.writeUInt16LE(0x020f, 0x206);
  out.writeUInt32LE(64, 0x248); // payload offset from the protected-mode code
  out.writeUInt32LE(payload.length, 0x24c);
  payload.copy(out, pmStart + 64);
  return out;
}

function have(tool: string): boolean {
  const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

describe('finding the BTF in a file', function () {
  describe('ELF', function () {
    it('reads .BTF from ELF64 x86-64 and ELF32 i386 files, with its file offset', function () {
      for (const [cls, machine, what] of [[64, 62, 'ELF64 x86-64 .BTF'], [32, 3, 'ELF32 i386 .BTF']] as const) {
        const file = buildElf([{ name: '.text', data: Buffer.alloc(16) }, { name: '.BTF', data: btf() }], cls, machine);
        const loaded = loadKernelBtf(file);
        expect(loaded.container).to.deep.equal([what]);
        expect(loaded.elfClass).to.equal(cls);
        expect(loaded.btf.fileOffset).to.equal((cls === 64 ? 64 : 52) + 16);
        expect(loaded.btf.typeCount).to.equal(sampleBtf().builder.typeCount);
      }
    });

    it('an ELF file without .BTF says how to get one', function () {
      const e = thrown(() => loadKernelBtf(buildElf([{ name: '.text', data: Buffer.alloc(4) }])));
      expect(e).to.be.instanceOf(ElfFormatError);
      expect(e.message).to.match(/ELF64 x86-64 file has no \.BTF section \(build the kernel with CONFIG_DEBUG_INFO_BTF=y, or .* pahole -J/);
    });

    it('corrupt BTF inside ELF is reported at its offset in the file', function () {
      const bad = btf();
      bad[0] = 0;
      const e = thrown(() => loadKernelBtf(buildElf([{ name: '.BTF', data: bad }]))) as InputFileError;
      expect(e.message).to.match(/^bad BTF magic/);
      expect(e.offset).to.equal(64);
    });

    it('a section table past the end of the file, a section past the end, a bad class', function () {
      const file = buildElf([{ name: '.BTF', data: btf() }]);
      const cut = file.subarray(0, file.length - 10);
      const a = thrown(() => parseElf(cut)) as ElfFormatError;
      expect(a.message).to.match(/section header table of 3 entries .* does not fit the file/);
      const b = Buffer.from(file);
      b.writeBigUInt64LE(BigInt(b.length), b.readUInt32LE(40) + 64 + 24); // .BTF's sh_offset
      expect(thrown(() => loadKernelBtf(b)).message).to.match(/section \.BTF .* runs past the end of the file/);
      const c = Buffer.from(file);
      c[4] = 9;
      expect((thrown(() => parseElf(c)) as ElfFormatError).offset).to.equal(4);
    });

    it('an ELF header cut short', function () {
      const e = thrown(() => parseElf(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])));
      expect(e).to.be.instanceOf(ElfFormatError);
      expect(e.message).to.match(/truncated ELF file/);
    });
  });

  it('raw BTF is read as it is', function () {
    expect(loadKernelBtf(btf()).container).to.deep.equal(['raw BTF']);
  });

  it('anything else is not an ELF file, raw BTF or kernel image', function () {
    const e = thrown(() => loadKernelBtf(Buffer.from('#!/bin/sh\n'))) as InputFileError;
    expect(e.message).to.equal('not an ELF file, raw BTF or compressed kernel image (it starts with 23 21 2f 62) (at file offset 0x0)');
    expect(thrown(() => loadKernelBtf(Buffer.alloc(0))).message).to.match(/the file is empty/);
  });

  describe('compressed kernel images', function () {
    const elf = (): Buffer => buildElf([{ name: '.BTF', data: btf() }]);

    it('unpacks a gzip-compressed file', function () {
      const loaded = loadKernelBtf(gzipSync(elf()));
      expect(loaded.container).to.deep.equal(['gzip', 'ELF64 x86-64 .BTF']);
    });

    it('unpacks a bzImage whose payload is gzip', function () {
      const loaded = loadKernelBtf(bzImage(gzipSync(elf())));
      expect(loaded.container).to.deep.equal(['bzImage', 'gzip', 'ELF64 x86-64 .BTF']);
      expect(loaded.btf.typeCount).to.be.greaterThan(10);
    });

    it('reports a corrupt gzip payload at its file offset', function () {
      const gz = gzipSync(elf());
      gz.fill(0x55, 20, 60);
      const e = thrown(() => loadKernelBtf(bzImage(gz))) as KernelImageError;
      expect(e).to.be.instanceOf(KernelImageError);
      expect(e.offset).to.equal(1024 + 64);
    });

    for (const [tool, args] of [['xz', ['-c', '--check=crc32']], ['zstd', ['-c', '-q']], ['lz4', ['-c', '-l', '-q']]] as const) {
      it(`unpacks a bzImage whose payload is ${tool} (with the kernel's appended size), using the ${tool} tool`, function () {
        if (!have(tool)) {
          console.log(`      skipped: ${tool} is not installed (it is not an oracle; install it to run this test)`);
          this.skip();
        }
        const packed = spawnSync(tool, [...args], { input: elf() });
        expect(packed.status, String(packed.stderr)).to.equal(0);
        const size = Buffer.alloc(4);
        size.writeUInt32LE(elf().length);
        const loaded = loadKernelBtf(bzImage(Buffer.concat([packed.stdout, size])));
        expect(loaded.container).to.deep.equal(['bzImage', tool, 'ELF64 x86-64 .BTF']);
      });
    }

    it('refuses xz when the xz tool is missing, saying how to get vmlinux', function () {
      const fakeXz = Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(32)]);
      const e = thrown(() => unpackKernelImage(bzImage(fakeXz), { xz: '/nonexistent/xz' })) as KernelImageError;
      expect(e).to.be.instanceOf(KernelImageError);
      expect(e.message).to.match(/^bzImage payload is xz-compressed and '\/nonexistent\/xz' is not installed \(Debian package xz-utils\); give the uncompressed vmlinux instead: extract it with the kernel's scripts\/extract-vmlinux, install the distribution's debug package/);
      expect(e.offset).to.equal(1024 + 64);
    });

    it('refuses bzip2 and an unknown payload compression', function () {
      expect(thrown(() => loadKernelBtf(bzImage(Buffer.from('BZh91AY&SY0000'))))).to.match(/bzip2-compressed and this kit does not unpack bzip2; give the uncompressed vmlinux/);
      expect(thrown(() => loadKernelBtf(bzImage(Buffer.from('????????'))))).to.match(/unknown compression \(starts with 3f3f3f3f\)/);
    });

    it('refuses a bzImage whose payload does not fit the file', function () {
      const img = bzImage(gzipSync(elf()));
      img.writeUInt32LE(img.length, 0x24c);
      expect((thrown(() => loadKernelBtf(img)) as KernelImageError).offset).to.equal(0x248);
    });

    it('reports a bad image inside the unpacked data with its offset there', function () {
      const bad = elf();
      bad[64] = 0; // the BTF magic
      const e = thrown(() => loadKernelBtf(gzipSync(bad))) as InputFileError;
      expect(e.message).to.match(/^in the image unpacked from gzip: bad BTF magic/);
      expect(e.offset).to.equal(64);
    });
  });
});
