/**
 * Field tables for the stream's fixed-width structures (spec "Fields": every field has a fixed
 * width and is aligned to its size; padding and reserved fields are zero on save). The stream's
 * structures are not in any header Debian ships (libxen-dev has no `xg_sr_stream_format.h`), so the
 * spec is the source, and Xen's `verify-stream-v2` is the oracle the tests hold the encodings to.
 *
 * A table is declared once; offsets, the size, encoding and decoding and the reserved-field check
 * all come from it. The image header is big-endian; everything after it is in the stream's
 * endianness, little-endian on x86 (the only one the kit reads or writes).
 */

export type FieldWidth = 1 | 2 | 4 | 8;

export interface StreamFieldDecl<N extends string = string, W extends FieldWidth = FieldWidth> {
  readonly name: N;
  /** Width in bytes: u8, u16, u32 or u64. */
  readonly width: W;
  /** Meaning and units, who writes it, invariants. */
  readonly doc: string;
  /** Written as zero; verify-stream-v2 rejects non-zero, libxc's restore ignores it. */
  readonly reserved?: boolean;
}

export interface StreamField extends StreamFieldDecl {
  readonly offset: number;
}

export type FieldValue<W extends FieldWidth> = W extends 8 ? bigint : number;

export type LayoutValues<F extends readonly StreamFieldDecl[]> = {
  [K in F[number] as K['name']]: FieldValue<K['width']>;
};

export type ByteOrder = 'big' | 'little';

export interface StreamLayout<F extends readonly StreamFieldDecl[] = readonly StreamFieldDecl[]> {
  readonly name: string;
  /** The section of the spec this mirrors. */
  readonly spec: string;
  readonly byteOrder: ByteOrder;
  readonly size: number;
  readonly fields: readonly StreamField[];
  offsetOf(name: F[number]['name']): number;
  /** Decodes `size` bytes at `at` (the caller has checked they are there). */
  read(bytes: Uint8Array, at: number): LayoutValues<F>;
  /** Encodes into `bytes` at `at`; reserved fields are written as zero, missing ones too. */
  write(bytes: Uint8Array, at: number, values: Partial<LayoutValues<F>>): void;
  /** The first non-reserved field whose given value does not fit its width (or is not an integer), or undefined. */
  misfit(values: Partial<LayoutValues<F>>): string | undefined;
  /** The first reserved field that is not zero, or undefined. */
  reservedNonZero(values: LayoutValues<F>): StreamField | undefined;
}

/** A field of a layout; `as const` is not needed for the literal types to survive. */
export function sfield<N extends string, W extends FieldWidth>(name: N, width: W, doc: string, reserved = false): StreamFieldDecl<N, W> {
  return Object.freeze({ name, width, doc, ...(reserved ? { reserved: true } : {}) });
}

/** The largest value a field of `width` bytes holds. */
export function maxOf(width: FieldWidth): number | bigint {
  return width === 8 ? (1n << 64n) - 1n : 2 ** (width * 8) - 1;
}

export function defineLayout<const F extends readonly StreamFieldDecl[]>(decl: {
  readonly name: string;
  readonly spec: string;
  readonly byteOrder?: ByteOrder;
  readonly fields: F;
}): StreamLayout<F> {
  const byteOrder = decl.byteOrder ?? 'little';
  const little = byteOrder === 'little';
  const fields: StreamField[] = [];
  let offset = 0;
  for (const f of decl.fields) {
    // The spec's rule; a table that breaks it is a bug in the kit, found at load time.
    if (offset % f.width !== 0) throw new Error(`${decl.name}.${f.name}: offset ${offset} is not aligned to its size ${f.width}`);
    fields.push(Object.freeze({ ...f, offset }));
    offset += f.width;
  }
  const size = offset;
  const byName = new Map(fields.map((f) => [f.name, f]));

  const view = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  const layout: StreamLayout<F> = {
    name: decl.name,
    spec: decl.spec,
    byteOrder,
    size,
    fields: Object.freeze(fields),
    offsetOf(name) {
      const f = byName.get(name);
      if (f === undefined) throw new Error(`${decl.name} has no field ${name}`);
      return f.offset;
    },
    read(bytes, at) {
      const dv = view(bytes);
      const out: Record<string, number | bigint> = {};
      for (const f of fields) {
        const o = at + f.offset;
        switch (f.width) {
          case 1:
            out[f.name] = dv.getUint8(o);
            break;
          case 2:
            out[f.name] = dv.getUint16(o, little);
            break;
          case 4:
            out[f.name] = dv.getUint32(o, little);
            break;
          case 8:
            out[f.name] = dv.getBigUint64(o, little);
            break;
        }
      }
      return out as LayoutValues<F>;
    },
    misfit(values) {
      const given = values as Record<string, number | bigint | undefined>;
      for (const f of fields) {
        const v = f.reserved ? undefined : given[f.name];
        if (v === undefined) continue;
        if (typeof v !== (f.width === 8 ? 'bigint' : 'number')) return f.name;
        if (v < 0 || v > maxOf(f.width) || (typeof v === 'number' && !Number.isInteger(v))) return f.name;
      }
      return undefined;
    },
    write(bytes, at, values) {
      const bad = layout.misfit(values);
      // Callers validate first; reaching this is a bug in the kit, not bad input.
      if (bad !== undefined) throw new RangeError(`${decl.name}.${bad}: value does not fit an unsigned field of its width`);
      const dv = view(bytes);
      const given = values as Record<string, number | bigint | undefined>;
      for (const f of fields) {
        const o = at + f.offset;
        const v = f.reserved ? undefined : given[f.name];
        switch (f.width) {
          case 1:
            dv.setUint8(o, Number(v ?? 0));
            break;
          case 2:
            dv.setUint16(o, Number(v ?? 0), little);
            break;
          case 4:
            dv.setUint32(o, Number(v ?? 0), little);
            break;
          case 8:
            dv.setBigUint64(o, BigInt(v ?? 0), little);
            break;
        }
      }
    },
    reservedNonZero(values) {
      const got = values as Record<string, number | bigint>;
      return fields.find((f) => f.reserved && got[f.name] !== 0 && got[f.name] !== 0n);
    },
  };
  return Object.freeze(layout);
}
