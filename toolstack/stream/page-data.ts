/**
 * Mirrors the spec's "PAGE_DATA" record (libxc's `struct xc_sr_rec_page_data_header`): a count, a
 * reserved word, `count` pfn words, then 4096 bytes for every pfn whose type carries data.
 *
 * A pfn word holds the page's `XEN_DOMCTL_PFINFO_*` type in bits 63–60 (the domctl value, whose
 * type nibble sits in bits 31–28, shifted up by 32), reserved bits 59–52 and the pfn in bits 51–0.
 * NOTAB, L1–L4TAB and their pinned forms carry data; BROKEN, XALLOC and XTAB carry none; type
 * nibbles 5–8 are invalid.
 */

import {
  PAGE_SIZE,
  XEN_DOMCTL_PFINFO_BROKEN,
  XEN_DOMCTL_PFINFO_L1TAB,
  XEN_DOMCTL_PFINFO_L2TAB,
  XEN_DOMCTL_PFINFO_L3TAB,
  XEN_DOMCTL_PFINFO_L4TAB,
  XEN_DOMCTL_PFINFO_LPINTAB,
  XEN_DOMCTL_PFINFO_LTAB_SHIFT,
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_XALLOC,
  XEN_DOMCTL_PFINFO_XTAB,
} from '../../abi/index.js';
import { bodyError, dataView, isPfn52, writeError, type RecordCodec } from './codec.js';
import { hex } from './errors.js';
import { defineLayout, sfield } from './layout.js';
import { materialiseInto, type PageContent } from './page-content.js';
import { REC_TYPE_PAGE_DATA } from './record-types.js';

export const page_data_header = defineLayout({
  name: 'PAGE_DATA',
  spec: 'Records / PAGE_DATA',
  fields: [
    sfield('count', 4, 'Number of pfn words that follow; at least 1.'),
    sfield('res1', 4, 'Reserved, zero.', true),
  ],
});

/** Bits 51–0 of a pfn word. */
export const PAGE_DATA_PFN_BITS = 52;
/** Bits 63–60 of a pfn word hold the type nibble. */
export const PAGE_DATA_TYPE_SHIFT = 60;
/** libxc's saver sends at most this many pfns per PAGE_DATA record (`MAX_BATCH_SIZE`). */
export const MAX_BATCH_SIZE = 1024;

/** Every `XEN_DOMCTL_PFINFO_*` type a PAGE_DATA pfn word may carry (libxc `is_known_page_type`). */
export const KNOWN_PAGE_TYPES: readonly number[] = Object.freeze([
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_L1TAB,
  XEN_DOMCTL_PFINFO_L2TAB,
  XEN_DOMCTL_PFINFO_L3TAB,
  XEN_DOMCTL_PFINFO_L4TAB,
  XEN_DOMCTL_PFINFO_L1TAB + XEN_DOMCTL_PFINFO_LPINTAB,
  XEN_DOMCTL_PFINFO_L2TAB + XEN_DOMCTL_PFINFO_LPINTAB,
  XEN_DOMCTL_PFINFO_L3TAB + XEN_DOMCTL_PFINFO_LPINTAB,
  XEN_DOMCTL_PFINFO_L4TAB + XEN_DOMCTL_PFINFO_LPINTAB,
  XEN_DOMCTL_PFINFO_BROKEN,
  XEN_DOMCTL_PFINFO_XALLOC,
  XEN_DOMCTL_PFINFO_XTAB,
]);

const TYPE_UNIT = 2 ** XEN_DOMCTL_PFINFO_LTAB_SHIFT;

/** The type nibble (0x0–0xF) of a domctl type value. */
export function pageTypeNibble(type: number): number {
  return Math.floor(type / TYPE_UNIT);
}

const KNOWN = new Set(KNOWN_PAGE_TYPES);

export function isKnownPageType(type: number): boolean {
  // A Set: this runs for every pfn of every PAGE_DATA record, written and read.
  return KNOWN.has(type);
}

/** Whether pages of this type carry 4096 bytes in the record (libxc `page_type_has_stream_data`). */
export function pageTypeHasData(type: number): boolean {
  const nibble = pageTypeNibble(type);
  return isKnownPageType(type) && nibble !== 0xd && nibble !== 0xe && nibble !== 0xf;
}

/** The spec's name of a page type: NOTAB, L2TAB, L4TAB_PIN, XTAB, … */
export function pageTypeName(type: number): string {
  const nibble = pageTypeNibble(type);
  const names = ['NOTAB', 'L1TAB', 'L2TAB', 'L3TAB', 'L4TAB', , , , , 'L1TAB_PIN', 'L2TAB_PIN', 'L3TAB_PIN', 'L4TAB_PIN', 'BROKEN', 'XALLOC', 'XTAB'];
  return isKnownPageType(type) ? names[nibble]! : `unknown type ${hex(type)}`;
}

export interface PageDataEntry {
  /** The guest pfn (bits 51–0 of the word). */
  readonly pfn: number;
  /** Its `XEN_DOMCTL_PFINFO_*` type, as `pageTypes()` reports it (type nibble in bits 31–28). */
  readonly type: number;
  /** The page's contents: present exactly when the type carries data. */
  readonly content?: PageContent;
}

export interface PageDataRecord {
  readonly type: typeof REC_TYPE_PAGE_DATA;
  readonly entries: readonly PageDataEntry[];
}

/** Pages of data in a record: the entries whose type carries data. */
export function pagesWithData(entries: readonly PageDataEntry[]): number {
  let n = 0;
  for (const e of entries) if (pageTypeHasData(e.type)) n++;
  return n;
}

export const pageDataCodec: RecordCodec<PageDataRecord> = {
  type: REC_TYPE_PAGE_DATA,
  spec: 'Records / PAGE_DATA',
  bodyLength(rec) {
    return page_data_header.size + 8 * rec.entries.length + PAGE_SIZE * pagesWithData(rec.entries);
  },
  encodeBody(rec, into, at) {
    page_data_header.write(into, at, { count: rec.entries.length });
    const dv = dataView(into);
    let word = at + page_data_header.size;
    let page = word + 8 * rec.entries.length;
    for (const e of rec.entries) {
      // Two u32 halves: the high one is the type nibble over pfn bits 51–32.
      dv.setUint32(word, e.pfn % 2 ** 32, true);
      dv.setUint32(word + 4, pageTypeNibble(e.type) * 2 ** 28 + Math.floor(e.pfn / 2 ** 32), true);
      word += 8;
      if (e.content !== undefined) {
        materialiseInto(e.content, into, page);
        page += PAGE_SIZE;
      }
    }
  },
  decodeBody(body, ctx) {
    const hdr = page_data_header.size;
    if (body.length < hdr) bodyError(ctx, 'bad-length', 'body_length', -4, `${body.length} bytes cannot hold the ${hdr}-byte PAGE_DATA header`);
    const h = page_data_header.read(body, 0);
    if (h.res1 !== 0 && ctx.strictReserved) bodyError(ctx, 'reserved-nonzero', 'res1', 4, `reserved field is ${hex(h.res1)}`);
    if (h.count === 0) bodyError(ctx, 'bad-count', 'count', 0, 'count is 0; a PAGE_DATA record describes at least one pfn');
    if (hdr + 8 * h.count > body.length) {
      bodyError(ctx, 'bad-count', 'count', 0, `count ${h.count} needs ${hdr + 8 * h.count} bytes of pfn words, the body has ${body.length}`);
    }
    const dv = dataView(body);
    const entries: PageDataEntry[] = [];
    const types: number[] = [];
    let withData = 0;
    for (let i = 0; i < h.count; i++) {
      const at = hdr + 8 * i;
      const lo = dv.getUint32(at, true);
      const hi = dv.getUint32(at + 4, true);
      const nibble = hi >>> 28;
      const reserved = (hi >>> 20) & 0xff;
      if (reserved !== 0 && ctx.strictReserved) {
        bodyError(ctx, 'reserved-nonzero', `pfn[${i}]`, at, `reserved bits 59–52 set: ${hex(BigInt(reserved) << 52n)}`);
      }
      const type = nibble * TYPE_UNIT;
      if (!isKnownPageType(type)) bodyError(ctx, 'bad-page-type', `pfn[${i}]`, at, `invalid page type ${hex(nibble)} in bits 63–60`);
      if (pageTypeHasData(type)) withData++;
      types.push(type);
      entries.push({ pfn: (hi & 0xfffff) * 2 ** 32 + lo, type });
    }
    const expected = hdr + 8 * h.count + PAGE_SIZE * withData;
    if (body.length !== expected) {
      bodyError(ctx, 'bad-length', 'body_length', -4,
        `expected ${hdr} + ${8 * h.count} + ${PAGE_SIZE * withData} = ${expected} bytes for ${h.count} pfns, ${withData} of them with data; got ${body.length}`);
    }
    let page = hdr + 8 * h.count;
    for (let i = 0; i < entries.length; i++) {
      if (!pageTypeHasData(types[i]!)) continue;
      entries[i] = { ...entries[i]!, content: { bytes: body.subarray(page, page + PAGE_SIZE) } };
      page += PAGE_SIZE;
    }
    return { type: REC_TYPE_PAGE_DATA, entries };
  },
  validate(rec, ctx) {
    if (rec.entries.length === 0) writeError(ctx, 'count', 'a PAGE_DATA record describes at least one pfn');
    rec.entries.forEach((e, i) => {
      if (!isPfn52(e.pfn)) writeError(ctx, `pfn[${i}]`, `pfn ${e.pfn} is not an integer in [0, 2^52)`);
      if (!isKnownPageType(e.type)) writeError(ctx, `pfn[${i}]`, `pfn ${hex(e.pfn)}: ${hex(e.type)} is not a known XEN_DOMCTL_PFINFO_* type`);
      const wants = pageTypeHasData(e.type);
      if (wants && e.content === undefined) writeError(ctx, `pfn[${i}]`, `pfn ${hex(e.pfn)} is ${pageTypeName(e.type)} and needs its page contents`);
      if (!wants && e.content !== undefined) writeError(ctx, `pfn[${i}]`, `pfn ${hex(e.pfn)} is ${pageTypeName(e.type)}, which carries no data`);
      if (e.content !== undefined && 'bytes' in e.content && e.content.bytes.length !== PAGE_SIZE) {
        writeError(ctx, `pfn[${i}]`, `pfn ${hex(e.pfn)}: a page is ${PAGE_SIZE} bytes, got ${e.content.bytes.length}`);
      }
      if (e.content !== undefined && 'stamp' in e.content && !(Number.isInteger(e.content.stamp) && e.content.stamp >= 0 && e.content.stamp <= 0xffffffff)) {
        writeError(ctx, `pfn[${i}]`, `pfn ${hex(e.pfn)}: stamp ${e.content.stamp} is not a u32`);
      }
    });
  },
};
