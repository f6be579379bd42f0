/**
 * Layouts as JSON, one object per ABI:
 * `{"arch":"x86_64","structs":{"shared_info":{"size":3136,"align":8,"fields":[{"name":"vcpu_info",
 * "offset":0,"size":2048,"type":"struct vcpu_info[32]","doc":"…"}, …]}, …}}`.
 * `fields` are the layout's leaves: members of anonymous aggregates appear dotted (`full_page.frame`).
 */

import type { GuestAbi, GuestAbiName } from '../guest-abi.js';
import type { StructInfo } from '../struct.js';
import type { LayoutSelection } from './model.js';

export interface JsonField {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly type: string;
  readonly doc: string;
}

export interface JsonStruct {
  readonly size: number;
  readonly align: number;
  readonly fields: readonly JsonField[];
}

export interface JsonAbiLayouts {
  readonly arch: GuestAbiName;
  readonly structs: Readonly<Record<string, JsonStruct>>;
}

/** The JSON value for one ABI; struct keys keep documentation order. */
export function layoutJson(structs: readonly StructInfo[], abi: GuestAbi): JsonAbiLayouts {
  const out: Record<string, JsonStruct> = {};
  for (const struct of structs) {
    const layout = struct.layout(abi);
    out[struct.name] = {
      size: layout.size,
      align: layout.align,
      fields: layout.leaves.map((f) => ({
        name: f.path,
        offset: f.offset,
        size: f.size,
        type: f.cType,
        doc: f.doc,
      })),
    };
  }
  return { arch: abi.name, structs: out };
}

function stringify(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** One ABI's layouts as a JSON document (what `--out` writes to `<arch>.json`). */
export function renderAbiJson(structs: readonly StructInfo[], abi: GuestAbi): string {
  return stringify(layoutJson(structs, abi));
}

/** The selection as JSON: an object for one ABI, an array of one object per ABI otherwise. */
export function renderJson(selection: LayoutSelection): string {
  const values = selection.abis.map((abi) => layoutJson(selection.structs, abi));
  return stringify(values.length === 1 ? values[0] : values);
}
