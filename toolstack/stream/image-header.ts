/**
 * Mirrors the spec's "Image Header" (docs/specs/libxc-migration-stream.pandoc; libxc's
 * `struct xc_sr_ihdr`): 24 octets, always big-endian, identifying a libxc migration stream and its
 * version.
 */

import { StreamHeaderError, hex } from './errors.js';
import { defineLayout, sfield } from './layout.js';

export const IHDR_MARKER = 0xffffffffffffffffn;
/** "XENF" in ASCII. */
export const IHDR_ID = 0x58454e46;
/** Bit 0 of `options`: 0 little-endian, 1 big-endian. */
export const IHDR_OPT_ENDIAN = 1 << 0;
/** `options` bits 1–15. */
export const IHDR_OPT_RESERVED_MASK = 0xfffe;

/** The version the kit writes (Xen 4.14 and later). */
export const STREAM_VERSION_CURRENT = 3;
/** The oldest version the kit reads (Xen 4.6–4.13). */
export const STREAM_VERSION_MIN = 2;

export type StreamVersion = 2 | 3;

export const image_header = defineLayout({
  name: 'image header',
  spec: 'Headers / Image Header',
  byteOrder: 'big',
  fields: [
    sfield('marker', 8, '0xFFFFFFFFFFFFFFFF. A legacy (pre-v2) image has a zero bit somewhere in its first 8 octets.'),
    sfield('id', 4, '0x58454E46, "XENF" in ASCII.'),
    sfield('version', 4, 'Version of the spec the image follows: 2 (Xen 4.6–4.13) or 3 (Xen 4.14+, STATIC_DATA_END mandatory).'),
    sfield('options', 2, 'Bit 0: endianness of everything after this header, 0 = little-endian (mandatory on x86). Bits 1–15 reserved, zero.'),
    sfield('res1', 2, 'Reserved, zero.', true),
    sfield('res2', 4, 'Reserved, zero.', true),
  ],
});

export interface ImageHeader {
  readonly version: StreamVersion;
}

export function encodeImageHeader(header: ImageHeader, into: Uint8Array, at: number): void {
  image_header.write(into, at, { marker: IHDR_MARKER, id: IHDR_ID, version: header.version, options: 0 });
}

export interface HeaderReadOptions {
  /** Reject non-zero reserved fields (verify-stream-v2 does; libxc's restore ignores them). */
  readonly strictReserved: boolean;
}

/** Decodes and checks the 24 bytes at `at` (stream offset `at` too: the image header starts the stream). */
export function decodeImageHeader(bytes: Uint8Array, at: number, options: HeaderReadOptions): ImageHeader {
  const h = image_header.read(bytes, at);
  const where = (field: string): number => at + image_header.offsetOf(field as 'marker');
  if (h.marker !== IHDR_MARKER) {
    throw new StreamHeaderError('bad-marker', 'image header', 'marker', where('marker'),
      `expected ${hex(IHDR_MARKER)}, got ${hex(h.marker)} (a legacy pre-v2 image, or not a migration stream)`);
  }
  if (h.id !== IHDR_ID) throw new StreamHeaderError('bad-id', 'image header', 'id', where('id'), `expected ${hex(IHDR_ID)} ("XENF"), got ${hex(h.id)}`);
  if (h.version < STREAM_VERSION_MIN || h.version > STREAM_VERSION_CURRENT) {
    throw new StreamHeaderError('bad-version', 'image header', 'version', where('version'),
      `expected ${STREAM_VERSION_MIN} <= version <= ${STREAM_VERSION_CURRENT}, got ${h.version}`);
  }
  if (h.options & IHDR_OPT_RESERVED_MASK && options.strictReserved) {
    throw new StreamHeaderError('reserved-nonzero', 'image header', 'options', where('options'), `reserved option bits set: ${hex(h.options & IHDR_OPT_RESERVED_MASK)}`);
  }
  if (h.options & IHDR_OPT_ENDIAN) {
    throw new StreamHeaderError('unsupported-endianness', 'image header', 'options', where('options'), 'big-endian stream; x86 streams are little-endian');
  }
  const reserved = image_header.reservedNonZero(h);
  if (reserved && options.strictReserved) {
    throw new StreamHeaderError('reserved-nonzero', 'image header', reserved.name, at + reserved.offset, 'reserved field is not zero');
  }
  return { version: h.version as StreamVersion };
}
