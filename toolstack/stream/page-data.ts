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
import { fillFromStamp } from '../../xen-emu/index.js';
import { bodyError, dataView, isPfn52, writeError, type RecordCodec, type WriteContext } from './codec.js';
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
  /**
   * The same pfns as columns, when the record was made from them (`PageDataColumns.record()`, the
   * in-process saver): consumers that understand columns read these, `entries` is then built from
   * them on first use. A record built by hand has none.
   */
  readonly columns?: PageDataColumns;
}

/** Per type nibble: bit 0 a known type, bit 1 a type carrying data (for u32 types whose low 28 bits are 0). */
const NIBBLE_KNOWN = 1;
const NIBBLE_HAS_DATA = 2;
const NIBBLE_FLAGS = new Uint8Array(16);
/** Bits 27–0 of a domctl type: zero in every known type. */
const TYPE_LOW_BITS = TYPE_UNIT - 1;
for (const type of KNOWN_PAGE_TYPES) NIBBLE_FLAGS[type >>> 28] = NIBBLE_KNOWN | (pageTypeHasData(type) ? NIBBLE_HAS_DATA : 0);

/**
 * `isKnownPageType` and `pageTypeHasData` in one lookup, for a u32 type from a typed column:
 * 0 (unknown), NIBBLE_KNOWN, or NIBBLE_KNOWN | NIBBLE_HAS_DATA.
 */
function columnTypeFlags(type: number): number {
  return (type & TYPE_LOW_BITS) === 0 ? NIBBLE_FLAGS[type >>> 28]! : 0;
}

/** Whether a u32 type from a typed column carries data (the typed-column form of `pageTypeHasData`). */
export function columnTypeHasData(type: number): boolean {
  return (columnTypeFlags(type) & NIBBLE_HAS_DATA) !== 0;
}

/** See `PageDataColumns.scan`. */
interface ColumnsScan {
  readonly wellFormed: boolean;
  readonly highestPfn: number;
  readonly pagesWithData: number;
}

/**
 * A PAGE_DATA record's pfns as columns: what the in-process saver builds and the restorer reads,
 * without an object per pfn (issue 8). Entry `i` is `pfns[i]` of type `types[i]`; its contents are
 * `bytes.get(i)` when present, else, for a type that carries data, the content stamp `stamps[i]`
 * (`stamps[i]` is ignored for other types). `entries` gives the same record as objects.
 *
 * Immutable once made: the writer hands it to sinks that keep it without copying (Remus
 * buffering, collectors), so neither the arrays nor the pages of bytes may be written afterwards.
 */
export class PageDataColumns {
  readonly count: number;
  /** Indexes that have bytes, ascending. */
  readonly bytesIndexes: readonly number[];
  private entryList: readonly PageDataEntry[] | undefined;
  private scanned: ColumnsScan | undefined;

  constructor(
    readonly pfns: Float64Array,
    readonly types: Uint32Array,
    readonly stamps: Uint32Array,
    /** Index → the page's 4096 bytes, for pages that hold real bytes (page tables, materialised frames). */
    readonly bytes: ReadonlyMap<number, Uint8Array> = new Map(),
  ) {
    this.count = pfns.length;
    if (types.length !== this.count || stamps.length !== this.count) {
      throw new RangeError(`PAGE_DATA columns differ in length: ${this.count} pfns, ${types.length} types, ${stamps.length} stamps`);
    }
    const indexes = [...bytes.keys()];
    for (const i of indexes) {
      if (!(Number.isInteger(i) && i >= 0 && i < this.count)) throw new RangeError(`PAGE_DATA bytes at index ${i}, outside the ${this.count} pfns`);
    }
    this.bytesIndexes = indexes.sort((a, b) => a - b);
  }

  /**
   * Columns for `entries`; throws RangeError for an entry the columns cannot hold: a type or a
   * stamp that is not a u32, a data type without contents, a stamp on a type without data.
   */
  static fromEntries(entries: readonly PageDataEntry[]): PageDataColumns {
    const n = entries.length;
    const pfns = new Float64Array(n);
    const types = new Uint32Array(n);
    const stamps = new Uint32Array(n);
    const bytes = new Map<number, Uint8Array>();
    entries.forEach((e, i) => {
      pfns[i] = e.pfn;
      types[i] = e.type;
      if (types[i] !== e.type) throw new RangeError(`entry ${i}: type ${e.type} is not a u32`);
      const data = columnTypeHasData(e.type);
      if (e.content === undefined) {
        if (data) throw new RangeError(`entry ${i}: a ${pageTypeName(e.type)} page without contents has no column form`);
      } else if ('bytes' in e.content) bytes.set(i, e.content.bytes);
      else if (!data) throw new RangeError(`entry ${i}: a stamp on a ${pageTypeName(e.type)} page has no column form`);
      else {
        stamps[i] = e.content.stamp;
        if (stamps[i] !== e.content.stamp) throw new RangeError(`entry ${i}: stamp ${e.content.stamp} is not a u32`);
      }
    });
    return new PageDataColumns(pfns, types, stamps, bytes);
  }

  /** The same record as entry objects, built once on first use. */
  get entries(): readonly PageDataEntry[] {
    if (this.entryList !== undefined) return this.entryList;
    const out: PageDataEntry[] = new Array(this.count);
    for (let i = 0; i < this.count; i++) {
      const pfn = this.pfns[i]!;
      const type = this.types[i]!;
      const bytes = this.bytes.get(i);
      if (bytes !== undefined) out[i] = { pfn, type, content: { bytes } };
      else if (columnTypeHasData(type)) out[i] = { pfn, type, content: { stamp: this.stamps[i]! } };
      else out[i] = { pfn, type };
    }
    this.entryList = Object.freeze(out);
    return this.entryList;
  }

  /** Entries whose type carries data (`pagesWithData` of `entries`). */
  get pagesWithData(): number {
    return this.scan().pagesWithData;
  }

  /** The highest pfn (NaN pfns aside): a record is within a maximum exactly when this is. */
  get highestPfn(): number {
    return this.scan().highestPfn;
  }

  /** Whether the entries pass every check `pageDataCodec.validate` makes on them (the same predicates). */
  get wellFormed(): boolean {
    return this.scan().wellFormed;
  }

  /** What the writer, its rules and the encoder ask of a record, in one pass over the columns. */
  private scan(): ColumnsScan {
    if (this.scanned !== undefined) return this.scanned;
    const { pfns, types, count } = this;
    let wellFormed = count > 0;
    let highestPfn = -Infinity;
    let pagesWithData = 0;
    for (let i = 0; i < count; i++) {
      const pfn = pfns[i]!;
      const flags = columnTypeFlags(types[i]!);
      // isPfn52, inline: NaN fails every comparison.
      if (!(pfn >= 0 && pfn < 2 ** 52 && Math.floor(pfn) === pfn) || flags === 0) wellFormed = false;
      if (pfn > highestPfn) highestPfn = pfn;
      if (flags & NIBBLE_HAS_DATA) pagesWithData++;
    }
    // Stamps are u32 by construction and every data type has contents; bytes must sit on a data page, a page long.
    for (const i of this.bytesIndexes) {
      if (!(columnTypeFlags(types[i]!) & NIBBLE_HAS_DATA) || this.bytes.get(i)!.length !== PAGE_SIZE) wellFormed = false;
    }
    this.scanned = { wellFormed, highestPfn, pagesWithData };
    return this.scanned;
  }

  /** Entries [start, end) as columns sharing these arrays. */
  slice(start: number, end: number): PageDataColumns {
    const from = Math.max(0, Math.min(start, this.count));
    const to = Math.max(from, Math.min(end, this.count));
    const bytes = new Map<number, Uint8Array>();
    for (const i of this.bytesIndexes) if (i >= from && i < to) bytes.set(i - from, this.bytes.get(i)!);
    return new PageDataColumns(this.pfns.subarray(from, to), this.types.subarray(from, to), this.stamps.subarray(from, to), bytes);
  }

  /** The same columns in memory of their own, pages of bytes included (for a sink that keeps them). */
  copy(): PageDataColumns {
    const bytes = new Map<number, Uint8Array>();
    for (const i of this.bytesIndexes) bytes.set(i, this.bytes.get(i)!.slice());
    return new PageDataColumns(this.pfns.slice(), this.types.slice(), this.stamps.slice(), bytes);
  }

  /** A PAGE_DATA record carrying these columns. */
  record(): PageDataRecord {
    return new ColumnarPageDataRecord(this);
  }
}

/**
 * A PAGE_DATA record made from columns. `entries` is an enumerable property built on first read, so
 * a spread copy (`{ ...rec }`) is a plain record with its entries; `columns` is not enumerable, so
 * a copy with other entries (`{ ...rec, entries }`) cannot carry columns that disagree with them.
 */
// `entries` is declared by merging this interface into the class rather than with a `declare`
// field, which the coverage instrumenter's TypeScript transform refuses.
interface ColumnarPageDataRecord {
  readonly entries: readonly PageDataEntry[];
}
class ColumnarPageDataRecord implements PageDataRecord {
  readonly type = REC_TYPE_PAGE_DATA;
  readonly #columns: PageDataColumns;

  constructor(columns: PageDataColumns) {
    this.#columns = columns;
    // One shared descriptor: every record takes the same map transition (no closure, no slow mode).
    Object.defineProperty(this, 'entries', ENTRIES_PROPERTY);
  }

  get columns(): PageDataColumns {
    return this.#columns;
  }
}

const ENTRIES_PROPERTY: PropertyDescriptor = Object.freeze({
  enumerable: true,
  get(this: ColumnarPageDataRecord): readonly PageDataEntry[] {
    return this.columns.entries;
  },
});

/** Pages of data in a record: the entries whose type carries data. */
export function pagesWithData(entries: readonly PageDataEntry[]): number {
  let n = 0;
  for (const e of entries) if (pageTypeHasData(e.type)) n++;
  return n;
}

function validateEntries(entries: readonly PageDataEntry[], ctx: WriteContext): void {
  if (entries.length === 0) writeError(ctx, 'count', 'a PAGE_DATA record describes at least one pfn');
  entries.forEach((e, i) => {
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
}

/** The pfn words and pages of columns (the same bytes `encodeBody` writes for their entries). */
function encodeColumns(c: PageDataColumns, into: Uint8Array, at: number): void {
  const dv = dataView(into);
  let word = at + page_data_header.size;
  let page = word + 8 * c.count;
  const { pfns, types, stamps, bytes } = c;
  let scratch: Uint8Array | undefined;
  for (let i = 0; i < c.count; i++) {
    const pfn = pfns[i]!;
    const type = types[i]!;
    dv.setUint32(word, pfn % 2 ** 32, true);
    dv.setUint32(word + 4, (type >>> 28) * 2 ** 28 + Math.floor(pfn / 2 ** 32), true);
    word += 8;
    const b = bytes.size === 0 ? undefined : bytes.get(i);
    if (b !== undefined) into.set(b, page);
    else if (columnTypeFlags(type) & NIBBLE_HAS_DATA) {
      const target = into.subarray(page, page + PAGE_SIZE);
      if (target.byteOffset % 4 === 0) fillFromStamp(target, stamps[i]!);
      else {
        // fillFromStamp fills 32-bit words: go through an aligned scratch page.
        scratch ??= new Uint8Array(PAGE_SIZE);
        fillFromStamp(scratch, stamps[i]!);
        target.set(scratch);
      }
    } else continue;
    page += PAGE_SIZE;
  }
}

export const pageDataCodec: RecordCodec<PageDataRecord> = {
  type: REC_TYPE_PAGE_DATA,
  spec: 'Records / PAGE_DATA',
  bodyLength(rec) {
    const c = rec.columns;
    if (c !== undefined) return page_data_header.size + 8 * c.count + PAGE_SIZE * c.pagesWithData;
    return page_data_header.size + 8 * rec.entries.length + PAGE_SIZE * pagesWithData(rec.entries);
  },
  encodeBody(rec, into, at) {
    if (rec.columns !== undefined) {
      page_data_header.write(into, at, { count: rec.columns.count });
      encodeColumns(rec.columns, into, at);
      return;
    }
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
    // Columns that pass the same predicates need no entry objects; on a failure the entry checks
    // run, so the error is the one the object path gives.
    if (rec.columns?.wellFormed) return;
    validateEntries(rec.entries, ctx);
  },
};
