/**
 * Mirrors the spec's "Domain Header" (docs/specs/libxc-migration-stream.pandoc; libxc's
 * `struct xc_sr_dhdr`): 16 octets in the stream's endianness, after the image header: the guest
 * type, its page size and the Xen version that saved it.
 */

import { PAGE_SHIFT } from '../../abi/index.js';
import { StreamHeaderError, hex } from './errors.js';
import { defineLayout, sfield } from './layout.js';

export const DHDR_TYPE_X86_PV = 0x0001;
export const DHDR_TYPE_X86_HVM = 0x0002;

export const domain_header = defineLayout({
  name: 'domain header',
  spec: 'Headers / Domain Header',
  fields: [
    sfield('type', 4, 'Guest type: 1 x86 PV, 2 x86 HVM; 0 and 3 and above reserved.'),
    sfield('page_shift', 2, 'log2 of the guest page size: 12.'),
    sfield('res1', 2, 'Reserved, zero.', true),
    sfield('xen_major', 4, 'Xen major version of the saving host (`XENVER_version` >> 16); 0 means converted from a legacy image by convert-legacy-stream.'),
    sfield('xen_minor', 4, 'Xen minor version of the saving host (`XENVER_version` & 0xffff); the converter\'s own version when xen_major is 0.'),
  ],
});

export interface DomainHeader {
  /** Always x86 PV for the kit. */
  readonly type: typeof DHDR_TYPE_X86_PV;
  readonly page_shift: typeof PAGE_SHIFT;
  readonly xen_major: number;
  readonly xen_minor: number;
}

/** The Xen version the kit's streams claim to come from: the release whose tools it models. */
export const KIT_XEN_VERSION = Object.freeze({ xen_major: 4, xen_minor: 17 });

export function encodeDomainHeader(header: DomainHeader, into: Uint8Array, at: number): void {
  domain_header.write(into, at, { type: header.type, page_shift: header.page_shift, xen_major: header.xen_major, xen_minor: header.xen_minor });
}

/** Decodes and checks the 16 bytes at `at`; errors name `streamOffset` (default `at`) plus the field's offset. */
export function decodeDomainHeader(bytes: Uint8Array, at: number, options: { readonly strictReserved: boolean; readonly streamOffset?: number }): DomainHeader {
  const h = domain_header.read(bytes, at);
  const base = options.streamOffset ?? at;
  const where = (field: 'type' | 'page_shift'): number => base + domain_header.offsetOf(field);
  if (h.type === DHDR_TYPE_X86_HVM) {
    throw new StreamHeaderError('unsupported-domain-type', 'domain header', 'type', where('type'), 'an x86 HVM stream; the kit reads x86 PV streams only');
  }
  if (h.type !== DHDR_TYPE_X86_PV) throw new StreamHeaderError('bad-domain-type', 'domain header', 'type', where('type'), `unknown domain type ${hex(h.type)}`);
  if (h.page_shift !== PAGE_SHIFT) {
    throw new StreamHeaderError('bad-page-shift', 'domain header', 'page_shift', where('page_shift'), `expected ${PAGE_SHIFT}, got ${h.page_shift}`);
  }
  const reserved = domain_header.reservedNonZero(h);
  if (reserved && options.strictReserved) {
    throw new StreamHeaderError('reserved-nonzero', 'domain header', reserved.name, base + reserved.offset, 'reserved field is not zero');
  }
  return { type: DHDR_TYPE_X86_PV, page_shift: PAGE_SHIFT as typeof PAGE_SHIFT, xen_major: h.xen_major, xen_minor: h.xen_minor };
}
