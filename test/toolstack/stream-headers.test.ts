/**
 * The image header (24 bytes, big-endian) and domain header (16 bytes, little-endian) of a libxc
 * stream (spec "Headers"): what the kit writes, byte for byte, and a typed error naming the field
 * and its stream offset for every value it must refuse.
 */

import { expect } from 'chai';
import { X86_64 } from '../../abi/index.js';
import {
  BufferOutput,
  EncodingSink,
  StreamHeaderError,
  StreamTruncatedError,
  StreamWriter,
  domain_header,
  image_header,
  readStream,
  type StreamErrorCode,
} from '../../toolstack/index.js';
import { rawStream } from './support/streams.js';

function expectHeaderError(bytes: Uint8Array, code: StreamErrorCode, record: string, field: string, offset: number): void {
  expect(() => readStream(bytes)).to.throw(StreamHeaderError).that.deep.includes({ code, record, field, offset });
}

describe('stream headers', function () {
  it('are written as the spec lays them out: big-endian image header, little-endian domain header', function () {
    const out = new BufferOutput();
    new StreamWriter(new EncodingSink(out), { xen: { xen_major: 4, xen_minor: 17 } }).start();
    expect(out.toBuffer().toString('hex')).to.equal(
      'ffffffffffffffff' + '58454e46' + '00000003' + '0000' + '0000' + '00000000' + // image header
        '01000000' + '0c00' + '0000' + '04000000' + '11000000', // domain header
    );
  });

  it('have the sizes and field offsets of the spec', function () {
    expect(image_header.size).to.equal(24);
    expect(image_header.fields.map((f) => [f.name, f.offset])).to.deep.equal([['marker', 0], ['id', 8], ['version', 12], ['options', 16], ['res1', 18], ['res2', 20]]);
    expect(domain_header.size).to.equal(16);
    expect(domain_header.fields.map((f) => [f.name, f.offset])).to.deep.equal([['type', 0], ['page_shift', 4], ['res1', 6], ['xen_major', 8], ['xen_minor', 12]]);
  });

  it('are read back: version, domain type, page shift and the saving Xen version', function () {
    const r = readStream(rawStream(X86_64, []));
    expect(r.image).to.deep.equal({ version: 3 });
    expect(r.domain).to.deep.equal({ type: 1, page_shift: 12, xen_major: 4, xen_minor: 17 });
  });

  it('accept version 2 and a legacy-converted stream (xen_major 0)', function () {
    const bytes = rawStream(X86_64, [], 2);
    bytes.writeUInt32LE(0, 32);
    const r = readStream(bytes);
    expect(r.image?.version).to.equal(2);
    expect(r.domain?.xen_major).to.equal(0);
  });

  describe('refuse, naming the field and its offset', function () {
    const good = (): Buffer => rawStream(X86_64, []);

    it('a marker with a zero bit (a legacy image)', function () {
      const b = good();
      b[5] = 0xfe;
      expectHeaderError(b, 'bad-marker', 'image header', 'marker', 0);
    });

    it('an id other than XENF', function () {
      const b = good();
      b.write('XENG', 8, 'latin1');
      expectHeaderError(b, 'bad-id', 'image header', 'id', 8);
    });

    for (const version of [0, 1, 4, 0xffffffff]) {
      it(`version ${version}`, function () {
        const b = good();
        b.writeUInt32BE(version, 12);
        expectHeaderError(b, 'bad-version', 'image header', 'version', 12);
      });
    }

    it('a big-endian stream', function () {
      const b = good();
      b.writeUInt16BE(1, 16);
      expectHeaderError(b, 'unsupported-endianness', 'image header', 'options', 16);
    });

    it('reserved option bits (ignored when reserved fields are not checked)', function () {
      const b = good();
      b.writeUInt16BE(0x8, 16);
      expectHeaderError(b, 'reserved-nonzero', 'image header', 'options', 16);
      expect(readStream(b, { strictReserved: false }).image?.version).to.equal(3);
    });

    it('reserved image header fields', function () {
      const b = good();
      b[19] = 1;
      expectHeaderError(b, 'reserved-nonzero', 'image header', 'res1', 18);
      const c = good();
      c[23] = 1;
      expectHeaderError(c, 'reserved-nonzero', 'image header', 'res2', 20);
    });

    it('an x86 HVM domain (the kit reads PV streams only)', function () {
      const b = good();
      b.writeUInt32LE(2, 24);
      expectHeaderError(b, 'unsupported-domain-type', 'domain header', 'type', 24);
    });

    for (const type of [0, 3, 0x80000001]) {
      it(`domain type ${type}`, function () {
        const b = good();
        b.writeUInt32LE(type, 24);
        expectHeaderError(b, 'bad-domain-type', 'domain header', 'type', 24);
      });
    }

    it('a page shift other than 12', function () {
      const b = good();
      b.writeUInt16LE(13, 28);
      expectHeaderError(b, 'bad-page-shift', 'domain header', 'page_shift', 28);
    });

    it('the domain header reserved field', function () {
      const b = good();
      b.writeUInt16LE(1, 30);
      expectHeaderError(b, 'reserved-nonzero', 'domain header', 'res1', 30);
    });

    it('a stream that ends inside either header, at every length', function () {
      const b = good();
      for (let n = 0; n < 40; n++) {
        let caught: unknown;
        try {
          readStream(b.subarray(0, n));
        } catch (e) {
          caught = e;
        }
        expect(caught, `length ${n}`).to.be.instanceOf(StreamTruncatedError);
        expect(caught).to.deep.include(n < 24 ? { record: 'image header', offset: 0, available: n } : { record: 'domain header', offset: 24, available: n - 24 });
      }
    });
  });
});
