/**
 * Layouts as one self-contained HTML page: inline CSS, no script, no external URL. Per struct its
 * doc, header, sizes, and per ABI a byte map (each field a coloured run of byte cells, holes and
 * padding hatched, names in the cells' titles) above the same table the markdown shows; when both
 * ABIs are rendered, a side-by-side table of what differs. Deterministic: no dates.
 */

import type { FieldLayout, LayoutRow, StructInfo, StructLayout } from '../struct.js';
import {
  anchorOf,
  compareAbis,
  describeDifference,
  DOC_INTRO,
  DOC_TITLE,
  formatOffset,
  formatSize,
  gapComment,
  gapLabel,
  headersOf,
  hexDigits,
  identicalSentence,
  splitTypeForLink,
  structTitle,
  type AbiComparison,
  type LayoutSelection,
} from './model.js';

/** Field colours; a field's colour is its position among the struct's fields, modulo this. */
const PALETTE: readonly string[] = Object.freeze(['#8ecae6', '#ffb703', '#90be6d', '#f4a6c6', '#c3b1e1', '#f9844a', '#7bdff2', '#e9c46a']);

const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0 auto; max-width: 1200px; padding: 1em 2em 4em; }
code, .mono { font-family: ui-monospace, "SF Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 0.92em; }
h1 { font-size: 1.7em; }
h2 { margin-top: 2.2em; padding-top: 0.6em; border-top: 2px solid #c9d1de; }
h3 { margin-top: 1.6em; }
a { color: #0b57d0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #c9d1de; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
td.num { text-align: right; white-space: nowrap; font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 0.92em; }
td.field { white-space: nowrap; }
td.diff { background: #fff3c4; font-weight: 600; }
tr.gap td { color: #555; font-style: italic; background: repeating-linear-gradient(45deg, #f1f1f1 0 4px, #fff 4px 8px); }
.meta { color: #444; }
.sw { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; vertical-align: -0.05em; border: 1px solid rgba(0, 0, 0, 0.35); }
.bytemap { display: grid; grid-auto-rows: 20px; row-gap: 2px; margin: 0.4em 0 0.6em; font-size: 11px; line-height: 18px; }
.bytemap .off { grid-column: 1; text-align: right; padding-right: 6px; color: #667; font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; }
.bytemap .seg { overflow: hidden; white-space: nowrap; text-overflow: ellipsis; padding: 0 3px; border: 1px solid rgba(0, 0, 0, 0.35); box-sizing: border-box; }
.gap { background: repeating-linear-gradient(45deg, #b8b8b8 0 2px, #fff 2px 6px); color: #444; }
.caption { color: #667; font-size: 0.9em; margin: 0; }
${PALETTE.map((c, i) => `.f${i} { background: ${c}; }`).join('\n')}
`;

function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Doc text: escaped, with markdown code spans shown as `<code>`. */
function prose(text: string): string {
  return esc(text).replace(/`([^`]+)`/g, '<code>$1</code>');
}

function codeHtml(text: string): string {
  return text === '' ? '' : `<code>${esc(text)}</code>`;
}

function typeHtml(field: FieldLayout, linkable: ReadonlySet<string>): string {
  const { head, rest, target } = splitTypeForLink(field);
  const headHtml = codeHtml(head);
  const linked = target && linkable.has(target.name) ? `<a href="#${esc(anchorOf(target))}">${headHtml}</a>` : headHtml;
  return linked + codeHtml(rest);
}

function td(content: string, cls?: string): string {
  return cls ? `<td class="${cls}">${content}</td>` : `<td>${content}</td>`;
}

function tableHtml(attrs: string, head: readonly string[], rows: readonly string[]): string {
  return [
    `<table${attrs}>`,
    `<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>`,
    '<tbody>',
    ...rows,
    '</tbody>',
    '</table>',
  ].join('\n');
}

/**
 * A run of bytes in the byte map. Members of a union are drawn one above the other: each union
 * member gets its own lanes, and `lane0`..`lane1` (exclusive) says which lanes a run covers.
 */
interface Segment {
  readonly start: number;
  readonly end: number;
  readonly lane0: number;
  readonly lane1: number;
  readonly label: string;
  readonly title: string;
  readonly cls: string;
}

/** Lanes an aggregate needs: one per leaf of a struct, the sum of its members' for a union. */
function lanesOf(members: readonly FieldLayout[], union: boolean): number {
  const counts = members.map((m) => (m.members && m.type.kind === 'inline' ? lanesOf(m.members, m.type.union) : 1));
  if (counts.length === 0) return 1;
  return union ? counts.reduce((sum, n) => sum + n, 0) : Math.max(...counts);
}

/** Assigns each aggregate and leaf its lanes: a struct's members share its lanes, a union's split them. */
function assignLanes(
  members: readonly FieldLayout[],
  union: boolean,
  lane0: number,
  lane1: number,
  bands: Map<string, readonly [number, number]>,
): void {
  let next = lane0;
  members.forEach((m, i) => {
    const inline = m.members && m.type.kind === 'inline' ? { members: m.members, union: m.type.union } : undefined;
    const own = inline ? lanesOf(inline.members, inline.union) : 1;
    const lo = union ? next : lane0;
    const hi = union ? (i === members.length - 1 ? lane1 : next + own) : lane1;
    next += own;
    bands.set(m.path, [lo, hi]);
    if (inline) assignLanes(inline.members, inline.union, lo, hi, bands);
  });
}

function rowTitle(r: LayoutRow, struct: StructInfo, digits: number): string {
  if (r.kind === 'field') {
    const f = r.field;
    return `${f.path}: ${f.cType}, offset ${formatOffset(f.offset, digits)}, ${f.size} bytes`;
  }
  return `${gapComment(r, struct.name)} at ${formatOffset(r.offset, digits)}`;
}

/** The colour class of each row: fields by position, gaps hatched. */
function rowClasses(layout: StructLayout): string[] {
  let n = 0;
  return layout.rows.map((r) => (r.kind === 'field' ? `f${n++ % PALETTE.length}` : 'gap'));
}

/** One segment per non-empty row, in the lanes of the aggregate it belongs to. */
function segmentsOf(struct: StructInfo, layout: StructLayout, classes: readonly string[]): { segments: Segment[]; lanes: number } {
  const union = layout.kind === 'union';
  const lanes = lanesOf(layout.fields, union);
  const bands = new Map<string, readonly [number, number]>([[struct.name, [0, lanes]]]);
  assignLanes(layout.fields, union, 0, lanes, bands);
  const digits = hexDigits(layout.size);
  const segments: Segment[] = [];
  layout.rows.forEach((r, i) => {
    const start = r.kind === 'field' ? r.field.offset : r.offset;
    const end = start + (r.kind === 'field' ? r.field.size : r.size);
    if (end <= start) return;
    const [lane0, lane1] = bands.get(r.kind === 'field' ? r.field.path : r.within) ?? [0, lanes];
    segments.push({
      start,
      end,
      lane0,
      lane1,
      label: r.kind === 'field' ? r.field.path : gapLabel(r),
      title: rowTitle(r, struct, digits),
      cls: classes[i] ?? 'gap',
    });
  });
  return { segments, lanes };
}

/** Bytes per byte-map row: a power of two from 16 up, so that a struct takes at most 32 rows. */
function bytesPerRow(size: number): number {
  let width = 16;
  while (Math.ceil(size / width) > 32) width *= 2;
  return width;
}

/**
 * A CSS grid: one column per byte, one row per `width` bytes. Where a union's members overlap, that
 * row splits into one sub-row per distinct lane band, so every member stays visible.
 */
function byteMap(struct: StructInfo, layout: StructLayout, classes: readonly string[]): string {
  const width = bytesPerRow(layout.size);
  const digits = hexDigits(layout.size);
  const { segments, lanes } = segmentsOf(struct, layout, classes);
  const cells: string[] = [];
  let gridRow = 1;
  for (let r = 0; r * width < layout.size; r++) {
    const lo = r * width;
    const hi = lo + width;
    const pieces = segments.filter((s) => s.start < hi && s.end > lo);
    const cuts = [...new Set([0, lanes, ...pieces.flatMap((p) => [p.lane0, p.lane1])])].sort((x, y) => x - y);
    const subRows = cuts.length - 1;
    cells.push(
      `<div class="off" style="grid-row:${gridRow}/span ${subRows}">0x${lo.toString(16).padStart(digits, '0')}</div>`,
    );
    for (const p of pieces) {
      const from = Math.max(p.start, lo);
      const to = Math.min(p.end, hi);
      const top = gridRow + cuts.indexOf(p.lane0);
      const span = cuts.indexOf(p.lane1) - cuts.indexOf(p.lane0);
      cells.push(
        `<div class="seg ${p.cls}" style="grid-row:${top}/span ${span};grid-column:${from - lo + 2}/span ${to - from}" ` +
          `title="${esc(p.title)}">${esc(p.label)}</div>`,
      );
    }
    gridRow += subRows;
  }
  const label = `byte map of ${structTitle(struct)} on ${layout.abi}`;
  const unionNote = lanes > 1 ? ' Members of a union are stacked one above the other.' : '';
  return [
    `<p class="caption">Byte map: ${width} bytes per row, one column per byte; hatched bytes are holes and padding.${unionNote} Hover a field for its offset and size.</p>`,
    `<div class="bytemap" role="img" aria-label="${esc(label)}" style="grid-template-columns:5em repeat(${width},minmax(0,1fr))">`,
    ...cells,
    '</div>',
  ].join('\n');
}

function layoutTable(struct: StructInfo, layout: StructLayout, classes: readonly string[], linkable: ReadonlySet<string>): string {
  const digits = hexDigits(layout.size);
  const rows = layout.rows.map((r, i) => {
    const swatch = `<span class="sw ${classes[i] ?? 'gap'}"></span>`;
    if (r.kind === 'field') {
      const f = r.field;
      return `<tr>${td(formatOffset(f.offset, digits), 'num')}${td(String(f.size), 'num')}${td(typeHtml(f, linkable))}${td(swatch + codeHtml(f.path), 'field')}${td(prose(f.doc))}</tr>`;
    }
    return `<tr class="gap">${td(formatOffset(r.offset, digits), 'num')}${td(String(r.size), 'num')}${td('')}${td(swatch + esc(gapLabel(r)), 'field')}${td(codeHtml(gapComment(r, struct.name)))}</tr>`;
  });
  return tableHtml(
    ` class="layout" data-struct="${esc(struct.name)}" data-abi="${layout.abi}"`,
    ['offset', 'size', 'C type', 'field', 'description'],
    rows,
  );
}

function sideBySide(cmp: AbiComparison, linkable: ReadonlySet<string>): string {
  const a = cmp.abiA.name;
  const b = cmp.abiB.name;
  const digits = hexDigits(Math.max(cmp.layoutA.size, cmp.layoutB.size));
  const none = td('—');
  const rows = cmp.fields.map((f) => {
    const flag = (d: 'offset' | 'size' | 'type'): string => (f.differences.includes(d) ? 'diff' : '');
    const side = (field: FieldLayout | undefined): string =>
      field
        ? td(formatOffset(field.offset, digits), `num ${flag('offset')}`.trim()) +
          td(String(field.size), `num ${flag('size')}`.trim()) +
          td(typeHtml(field, linkable), flag('type') || undefined)
        : none + none + none;
    const whole = !f.a || !f.b ? 'diff' : undefined;
    return `<tr>${td(codeHtml(f.path), whole)}${side(f.a)}${side(f.b)}${td(esc(describeDifference(f, cmp)), whole)}</tr>`;
  });
  const sizeDiffers = cmp.layoutA.size !== cmp.layoutB.size;
  const sizeCls = sizeDiffers ? 'num diff' : 'num';
  rows.push(
    `<tr>${td('<em>sizeof</em>')}${td('')}${td(String(cmp.layoutA.size), sizeCls)}${td('')}${td('')}${td(String(cmp.layoutB.size), sizeCls)}${td('')}${td(sizeDiffers ? 'size' : '')}</tr>`,
  );
  return tableHtml(
    ` class="compare" data-struct="${esc(cmp.struct.name)}"`,
    ['field', `${a} offset`, `${a} size`, `${a} C type`, `${b} offset`, `${b} size`, `${b} C type`, 'differs'],
    rows,
  );
}

function structSection(struct: StructInfo, selection: LayoutSelection, linkable: ReadonlySet<string>): string {
  const headers = headersOf(struct).map(codeHtml).join(', ');
  const parts = [
    `<section class="struct" id="${esc(anchorOf(struct))}">`,
    `<h2>${esc(structTitle(struct))}</h2>`,
    `<p class="meta">${headersOf(struct).length === 1 ? 'Header' : 'Headers'}: ${headers} (in Xen's <code>include/public/</code>).</p>`,
    `<p class="doc">${prose(struct.doc)}</p>`,
    tableHtml(
      ' class="sizes"',
      ['ABI', 'sizeof', 'alignment'],
      selection.abis.map((abi) => {
        const layout = struct.layout(abi);
        return `<tr>${td(esc(abi.name))}${td(formatSize(layout.size), 'num')}${td(String(layout.align), 'num')}</tr>`;
      }),
    ),
  ];
  for (const abi of selection.abis) {
    const layout = struct.layout(abi);
    const classes = rowClasses(layout);
    parts.push(
      `<h3 id="${esc(`${anchorOf(struct)}-${abi.name}`)}">${esc(struct.name)} on ${esc(abi.name)}</h3>`,
      byteMap(struct, layout, classes),
      layoutTable(struct, layout, classes, linkable),
    );
  }
  const [abiA, abiB] = selection.abis;
  if (selection.abis.length === 2 && abiA && abiB) {
    const cmp = compareAbis(struct, abiA, abiB);
    parts.push(`<h3>${esc(struct.name)}: ${esc(abiA.name)} vs ${esc(abiB.name)}</h3>`);
    parts.push(cmp.identical ? `<p class="same">${esc(identicalSentence(cmp))}</p>` : sideBySide(cmp, linkable));
  }
  parts.push('</section>');
  return parts.join('\n');
}

function indexTable(selection: LayoutSelection): string {
  const [abiA, abiB] = selection.abis;
  const both = selection.abis.length === 2 && abiA && abiB;
  const head = ['struct', 'header', ...selection.abis.map((abi) => `size on ${abi.name}`)];
  if (both) head.push(`${abiA.name} vs ${abiB.name}`);
  const rows = selection.structs.map((struct) => {
    const cells = [
      td(`<a href="#${esc(anchorOf(struct))}">${codeHtml(structTitle(struct))}</a>`),
      td(headersOf(struct).map(codeHtml).join(', ')),
      ...selection.abis.map((abi) => td(String(struct.sizeOf(abi)), 'num')),
    ];
    if (both) cells.push(td(compareAbis(struct, abiA, abiB).identical ? 'identical' : 'differs'));
    return `<tr>${cells.join('')}</tr>`;
  });
  return tableHtml(' class="index"', head, rows);
}

/** The whole page for the selection. */
export function renderHtml(selection: LayoutSelection): string {
  const linkable = new Set(selection.structs.map((s) => s.name));
  const abis = selection.abis.map((abi) => abi.name).join(', ');
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="generator" content="xenabi layout">',
    `<title>${esc(DOC_TITLE)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<!-- Generated by `xenabi layout` from abi/; do not edit. -->',
    '<header>',
    `<h1>${esc(DOC_TITLE)}</h1>`,
    `<p>${prose(DOC_INTRO)}</p>`,
    `<p class="meta">ABIs: ${esc(abis)}.</p>`,
    '</header>',
    '<nav>',
    indexTable(selection),
    '</nav>',
    '<main>',
    ...selection.structs.map((struct) => structSection(struct, selection, linkable)),
    '</main>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
