/**
 * abi/doc: the layout renderers. JSON has exactly the documented shape; markdown shows holes and
 * tail padding as rows, escapes `|`, and compares the two ABIs side by side; HTML is one
 * self-contained page with a table and a byte map per struct and ABI. Expected offsets come from
 * the layouts, never from hand arithmetic.
 */

import { expect } from 'chai';
import { domid_t, field, inlineStruct, uint16_t, uint32_t, uint64_t, uint8_t } from '../../abi/ctype.js';
import { GUEST_ABIS, X86_32, X86_64 } from '../../abi/guest-abi.js';
import { shared_info, vcpu_time_info } from '../../abi/shared_info.js';
import { defineStruct, type StructInfo } from '../../abi/struct.js';
import {
  compareAbis,
  formatOffset,
  hexDigits,
  layoutDocFiles,
  layoutDocument,
  renderHtml,
  renderJson,
  renderMarkdown,
  renderMarkdownIndex,
  renderStructMarkdown,
} from '../../abi/doc/index.js';

/** Word-aligned member after a byte: a hole, then tail padding after the last byte. */
const holey = defineStruct({
  name: 'doc_test_holey',
  header: 'test/doc.h',
  doc: 'Test struct with a hole | and <b>markup</b> & an ampersand.',
  fields: [
    field('a', uint8_t, 'First byte; a | b.'),
    field('b', uint64_t, 'Aligned 64-bit word <script>alert(1)</script>.'),
    field('c', uint8_t, 'Last byte.'),
  ],
});

/** A grant_entry_v2-like union whose members are anonymous structs. */
const grantLike = defineStruct({
  name: 'doc_test_grant',
  kind: 'union',
  header: 'test/grant.h',
  doc: 'Union of anonymous structs, like grant_entry_v2.',
  fields: [
    field('hdr', inlineStruct([field('flags', uint16_t, 'GTF_* flags.'), field('domid', domid_t, 'Grantee.')]), 'Header.'),
    field(
      'full_page',
      inlineStruct([
        field('flags', uint16_t, 'GTF_* flags.'),
        field('domid', domid_t, 'Grantee.'),
        field('pad0', uint32_t, 'Padding.'),
        field('frame', uint64_t, 'Frame granted.'),
      ]),
      'A whole page.',
    ),
    field(
      'sub_page',
      inlineStruct([
        field('flags', uint16_t, 'GTF_* flags.'),
        field('domid', domid_t, 'Grantee.'),
        field('page_off', uint16_t, 'First byte.'),
        field('length', uint16_t, 'Length.'),
        field('frame', uint64_t, 'Frame holding the range.'),
      ]),
      'Part of a page.',
    ),
  ],
});

interface JsonDoc {
  arch: string;
  structs: Record<string, { size: number; align: number; fields: Record<string, unknown>[] }>;
}

function tableLines(markdown: string): string[] {
  return markdown.split('\n').filter((line) => line.startsWith('|'));
}

/** The part of a markdown document under the first heading containing `title`, to the next heading. */
function section(markdown: string, title: string): string {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.startsWith('#') && l.includes(title));
  expect(start, `heading with "${title}"`).to.be.greaterThan(-1);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('#'));
  return lines.slice(start, end === -1 ? undefined : end).join('\n');
}

function count(haystack: string, needle: RegExp): number {
  return haystack.match(new RegExp(needle.source, 'g'))?.length ?? 0;
}

describe('abi/doc: JSON', function () {
  it('has exactly the keys arch/structs, size/align/fields and name/offset/size/type/doc (shared_info, x86_64)', function () {
    const doc = JSON.parse(renderJson({ structs: [shared_info], abis: [X86_64] })) as JsonDoc;
    expect(Object.keys(doc)).to.deep.equal(['arch', 'structs']);
    expect(doc.arch).to.equal('x86_64');
    expect(Object.keys(doc.structs)).to.deep.equal(['shared_info']);
    const s = doc.structs.shared_info!;
    expect(Object.keys(s)).to.deep.equal(['size', 'align', 'fields']);
    const layout = shared_info.layout(X86_64);
    expect(s.size).to.equal(shared_info.sizeOf(X86_64));
    expect(s.align).to.equal(layout.align);
    for (const f of s.fields) expect(Object.keys(f)).to.deep.equal(['name', 'offset', 'size', 'type', 'doc']);
    expect(s.fields.map((f) => f.name)).to.deep.equal(layout.leaves.map((f) => f.path));
    const arch = s.fields.find((f) => f.name === 'arch');
    expect(arch).to.deep.include({
      offset: shared_info.offsetOf(X86_64, 'arch'),
      size: layout.leaves.find((f) => f.path === 'arch')!.size,
      type: 'struct arch_shared_info',
    });
    expect(s.fields[0]).to.deep.include({ name: 'vcpu_info', offset: 0, type: 'struct vcpu_info[32]' });
    expect(s.fields[0]!.doc).to.be.a('string').and.not.equal('');
  });

  it('is an array of one object per ABI, x86_32 first, when both ABIs are rendered', function () {
    const docs = JSON.parse(renderJson({ structs: [shared_info], abis: GUEST_ABIS })) as JsonDoc[];
    expect(docs).to.be.an('array').with.length(2);
    expect(docs.map((d) => d.arch)).to.deep.equal(['x86_32', 'x86_64']);
    expect(docs[0]!.structs.shared_info!.size).to.equal(shared_info.sizeOf(X86_32));
    const names32 = docs[0]!.structs.shared_info!.fields.map((f) => f.name);
    const names64 = docs[1]!.structs.shared_info!.fields.map((f) => f.name);
    expect(names32).to.not.include('wc_sec_hi');
    expect(names64).to.include('wc_sec_hi');
  });

  it('lists members of anonymous aggregates with dotted names, not the aggregates themselves', function () {
    const doc = JSON.parse(renderJson({ structs: [grantLike], abis: [X86_64] })) as JsonDoc;
    const fields = doc.structs.doc_test_grant!.fields;
    const names = fields.map((f) => f.name);
    expect(names).to.include.members(['hdr.flags', 'full_page.frame', 'sub_page.page_off', 'sub_page.frame']);
    expect(names).to.not.include('full_page');
    expect(fields.find((f) => f.name === 'full_page.frame')).to.deep.include({
      offset: grantLike.offsetOf(X86_64, 'full_page.frame'),
      type: 'uint64_t',
    });
    expect(fields.find((f) => f.name === 'sub_page.length')!.offset).to.equal(grantLike.offsetOf(X86_64, 'sub_page.length'));
  });
});

describe('abi/doc: markdown', function () {
  it('shows a hole and tail padding as rows, like pahole', function () {
    for (const abi of GUEST_ABIS) {
      const layout = holey.layout(abi);
      const hole = layout.rows.find((r) => r.kind === 'hole');
      const padding = layout.rows.find((r) => r.kind === 'padding');
      if (hole?.kind !== 'hole' || padding?.kind !== 'padding') throw new Error(`${abi.name}: test struct has no hole and padding`);
      const lines = tableLines(renderStructMarkdown(holey, [abi]));
      const digits = hexDigits(layout.size);
      const holeLine = lines.find((l) => l.startsWith(`| ${formatOffset(hole.offset, digits)} | ${hole.size} |`));
      const padLine = lines.find((l) => l.startsWith(`| ${formatOffset(padding.offset, digits)} | ${padding.size} |`));
      expect(holeLine, `${abi.name} hole row`).to.include('(hole)').and.include(`/* XXX ${hole.size} bytes hole */`);
      expect(padLine, `${abi.name} padding row`).to.include('(padding)').and.include(`${padding.size} bytes tail padding`);
      // Rows keep offset order: a, hole, b, c, padding.
      const order = ['`a`', '(hole)', '`b`', '`c`', '(padding)'].map((m) => lines.findIndex((l) => l.includes(m)));
      expect(order).to.deep.equal([...order].sort((x, y) => x - y));
    }
  });

  it('writes offsets as hex and decimal (`0x0c10 (3088)`), with size, C type, dotted field and description', function () {
    const lines = tableLines(renderStructMarkdown(grantLike, [X86_64]));
    const offset = grantLike.offsetOf(X86_64, 'sub_page.frame');
    const line = lines.find((l) => l.includes('`sub_page.frame`'));
    expect(line).to.equal(`| ${formatOffset(offset, 4)} | 8 | \`uint64_t\` | \`sub_page.frame\` | Frame holding the range. |`);
    expect(formatOffset(3088, 4)).to.equal('0x0c10 (3088)');
  });

  it('escapes | in docs so table rows keep their columns', function () {
    const md = renderStructMarkdown(holey, [X86_64]);
    const line = tableLines(md).find((l) => l.includes('`a`'));
    expect(line).to.include('First byte; a \\| b.');
    expect(line!.replace(/\\\|/g, '').split('|')).to.have.length(7);
    expect(md).to.include('&lt;b>markup&lt;/b>');
  });

  it('states the struct doc, header, size and alignment', function () {
    const md = renderStructMarkdown(shared_info, GUEST_ABIS);
    expect(md.split('\n')[0]).to.equal('# struct shared_info');
    expect(md).to.include(shared_info.doc);
    expect(md).to.include('`xen.h`');
    for (const abi of GUEST_ABIS) {
      const layout = shared_info.layout(abi);
      expect(md).to.match(new RegExp(`\\| ${abi.name} \\| ${layout.size} \\(0x${layout.size.toString(16)}\\) \\| ${layout.align} \\|`));
    }
  });

  it('compares the ABIs side by side where they differ: wc_sec_hi, evtchn_pending, arch', function () {
    const cmp = section(renderStructMarkdown(shared_info, GUEST_ABIS), 'x86_32 vs x86_64');
    const rows = tableLines(cmp);
    const wcSecHi = rows.find((l) => l.startsWith('| `wc_sec_hi` |'));
    expect(wcSecHi, 'wc_sec_hi row').to.match(/\| — \| — \| — \|.*\| x86_64 only \|$/);
    expect(wcSecHi).to.include(formatOffset(shared_info.offsetOf(X86_64, 'wc_sec_hi'), 4));
    const pending = rows.find((l) => l.startsWith('| `evtchn_pending` |'));
    expect(pending, 'evtchn_pending row').to.match(/\| size, type \|$/);
    const arch = rows.find((l) => l.startsWith('| `arch` |'));
    expect(arch, 'arch row').to.match(/\| offset, size \|$/);
    expect(arch).to.include(formatOffset(shared_info.offsetOf(X86_32, 'arch'), 4));
    expect(arch).to.include(formatOffset(shared_info.offsetOf(X86_64, 'arch'), 4));
    expect(compareAbis(shared_info, X86_32, X86_64).identical).to.equal(false);
  });

  it('says in one line when both ABIs lay a struct out identically', function () {
    const cmp = section(renderStructMarkdown(vcpu_time_info, GUEST_ABIS), 'x86_32 vs x86_64');
    expect(cmp).to.include('The layout is identical on x86_32 and x86_64');
    expect(tableLines(cmp)).to.deep.equal([]);
  });

  it('has no comparison when one ABI is rendered', function () {
    expect(renderStructMarkdown(shared_info, [X86_64])).to.not.include(' vs ');
  });

  it('indexes every struct with its size on each ABI, linking to its file', function () {
    const structs: StructInfo[] = [shared_info, holey];
    const index = renderMarkdownIndex({ structs, abis: GUEST_ABIS });
    for (const s of structs) {
      const line = tableLines(index).find((l) => l.includes(`(${s.name}.md)`));
      expect(line, s.name).to.include(`| ${s.sizeOf(X86_32)} | ${s.sizeOf(X86_64)} |`);
    }
  });

  it('links struct types to their section in one document, and is deterministic', function () {
    const md = renderMarkdown({ structs: [vcpu_time_info, shared_info], abis: GUEST_ABIS });
    expect(md).to.include('## struct shared_info');
    // vcpu_time_info is in the document, vcpu_info is not: only the former is linked.
    expect(md).to.include('[`struct vcpu_time_info`](#struct-vcpu_time_info)');
    expect(md).to.not.include('](#struct-vcpu_info)');
    expect(renderMarkdown({ structs: [vcpu_time_info, shared_info], abis: GUEST_ABIS })).to.equal(md);
  });
});

describe('abi/doc: HTML', function () {
  const structs: StructInfo[] = [shared_info, holey, grantLike];
  const html = renderHtml({ structs, abis: GUEST_ABIS });

  it('is one self-contained page: one <html>, no script, no external URL', function () {
    expect(html.startsWith('<!DOCTYPE html>\n<html lang="en">')).to.equal(true);
    expect(count(html, /<html[\s>]/)).to.equal(1);
    expect(count(html, /<\/html>/)).to.equal(1);
    expect(count(html, /<body[\s>]/)).to.equal(1);
    expect(html).to.not.match(/https?:\/\//);
    expect(html).to.not.match(/<script|<link|src=|url\(/i);
    expect(count(html, /<table[\s>]/)).to.equal(count(html, /<\/table>/));
    expect(count(html, /<tr[\s>]/)).to.equal(count(html, /<\/tr>/));
    expect(count(html, /<section[\s>]/)).to.equal(count(html, /<\/section>/));
  });

  it('has a layout table and a byte map per struct and ABI', function () {
    for (const s of structs) {
      for (const abi of GUEST_ABIS) {
        expect(html, `${s.name} ${abi.name}`).to.include(`<table class="layout" data-struct="${s.name}" data-abi="${abi.name}">`);
        expect(html).to.include(`aria-label="byte map of ${s.kind} ${s.name} on ${abi.name}"`);
      }
    }
    expect(count(html, /<table class="layout"/)).to.equal(structs.length * GUEST_ABIS.length);
  });

  it('escapes docs', function () {
    expect(html).to.include('Aligned 64-bit word &lt;script&gt;alert(1)&lt;/script&gt;.');
    expect(html).to.include('&lt;b&gt;markup&lt;/b&gt; &amp; an ampersand');
    expect(html).to.not.include('<b>markup');
  });

  it('hatches holes and padding in the byte map and names fields in titles', function () {
    const layout = holey.layout(X86_64);
    const hole = layout.rows.find((r) => r.kind === 'hole');
    if (hole?.kind !== 'hole') throw new Error('test struct has no hole');
    const map = renderHtml({ structs: [holey], abis: [X86_64] });
    const title = `/* XXX ${hole.size} bytes hole */ at ${formatOffset(hole.offset, hexDigits(layout.size))}`;
    expect(map).to.match(new RegExp(`<div class="seg gap" style="[^"]*span ${hole.size}" title="${title.replace(/[*()/]/g, '\\$&')}">`));
    for (const f of layout.leaves) expect(map).to.match(new RegExp(`<div class="seg f\\d" [^>]*title="${f.path}: `));
  });

  it('stacks union members in their own rows of the byte map', function () {
    const map = renderHtml({ structs: [grantLike], abis: [X86_64] });
    const rowOf = (path: string): string | undefined =>
      new RegExp(`style="grid-row:(\\d+)/span \\d+;[^"]*" title="${path.replace('.', '\\.')}: `).exec(map)?.[1];
    const rows = ['hdr.flags', 'full_page.frame', 'sub_page.frame'].map(rowOf);
    expect(rows.every((r) => r !== undefined), 'every member drawn').to.equal(true);
    expect(new Set(rows).size).to.equal(3);
  });

  it('compares the ABIs side by side, marking wc_sec_hi as x86_64 only', function () {
    const compare = html.slice(html.indexOf('<table class="compare" data-struct="shared_info">'));
    const row = compare.slice(compare.indexOf('<code>wc_sec_hi</code>'), compare.indexOf('</tr>', compare.indexOf('<code>wc_sec_hi</code>')));
    expect(row).to.include('x86_64 only');
    expect(html).to.include('The layout is identical on x86_32 and x86_64');
  });
});

describe('abi/doc: files and documents by format', function () {
  const selection = { structs: [vcpu_time_info, shared_info], abis: GUEST_ABIS };

  it('md writes README.md and one file per struct; html one page; json one file per ABI', function () {
    expect(layoutDocFiles('md', selection).map((f) => f.name)).to.deep.equal(['README.md', 'vcpu_time_info.md', 'shared_info.md']);
    expect(layoutDocFiles('html', selection).map((f) => f.name)).to.deep.equal(['layouts.html']);
    expect(layoutDocFiles('json', selection).map((f) => f.name)).to.deep.equal(['x86_32.json', 'x86_64.json']);
    const [file64] = layoutDocFiles('json', { ...selection, abis: [X86_64] });
    expect(JSON.parse(file64!.content)).to.deep.equal(JSON.parse(layoutDocument('json', { ...selection, abis: [X86_64] })));
  });
});
