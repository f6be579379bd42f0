/**
 * Layout documentation generated from `ABI_STRUCTS`: what `xenabi layout` prints or writes.
 * Everything here returns strings; the caller does the I/O.
 */

import { renderAbiJson, renderJson } from './json.js';
import { C_HEADER_FILE, renderCHeader } from './c-header.js';
import { renderHtml } from './html.js';
import { renderMarkdown, renderMarkdownFiles, renderMarkdownIndex } from './markdown.js';
import type { LayoutSelection } from './model.js';

export * from './model.js';
export * from './json.js';
export * from './markdown.js';
export * from './html.js';
export * from './c-header.js';

export type DocFormat = 'md' | 'html' | 'json' | 'c';
export const DOC_FORMATS: readonly DocFormat[] = Object.freeze(['md', 'html', 'json', 'c']);

export function isDocFormat(name: string): name is DocFormat {
  return (DOC_FORMATS as readonly string[]).includes(name);
}

/** A file to write, by its name inside the output directory. */
export interface DocFile {
  readonly name: string;
  readonly content: string;
}

/** The name of the HTML page `--out` writes. */
export const HTML_FILE = 'layouts.html';

/** The one document printed to standard output. */
export function layoutDocument(format: DocFormat, selection: LayoutSelection): string {
  switch (format) {
    case 'md':
      return renderMarkdown(selection);
    case 'html':
      return renderHtml(selection);
    case 'json':
      return renderJson(selection);
    case 'c':
      return renderCHeader(selection);
  }
}

/**
 * The files written into an output directory: md → `README.md` (index) and `<struct>.md` each;
 * html → `layouts.html`; json → `<arch>.json` per ABI; c → `xenabi-layout-asserts.h`. In a fixed order, so output is reproducible.
 */
export function layoutDocFiles(format: DocFormat, selection: LayoutSelection): DocFile[] {
  switch (format) {
    case 'md':
      return [{ name: 'README.md', content: renderMarkdownIndex(selection) }, ...renderMarkdownFiles(selection)];
    case 'html':
      return [{ name: HTML_FILE, content: renderHtml(selection) }];
    case 'json':
      return selection.abis.map((abi) => ({ name: `${abi.name}.json`, content: renderAbiJson(selection.structs, abi) }));
    case 'c':
      return [{ name: C_HEADER_FILE, content: renderCHeader(selection) }];
  }
}
