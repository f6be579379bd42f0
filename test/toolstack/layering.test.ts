/**
 * toolstack/ follows the design's arrows: it imports abi/ and xen-emu/ (and Node), never guest-emu/
 * (a toolstack sees a guest only through the privileged interface), and its ESM imports end in `.js`.
 */

import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

describe('toolstack layering', function () {
  const files = tsFiles(join(root, 'toolstack'));

  it('has source files to check', function () {
    expect(files.length).to.be.greaterThan(10);
  });

  it('imports only abi/, xen-emu/, itself and node: modules, with .js specifiers', function () {
    for (const file of files) {
      const source = readFileSync(file, 'utf8');
      for (const [, spec] of source.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)) {
        const where = `${relative(root, file)}: '${spec}'`;
        expect(spec, where).not.to.match(/guest-emu/);
        if (spec!.startsWith('.')) {
          expect(spec, where).to.match(/\.js$/);
          const target = relative(root, join(file, '..', spec!));
          expect(target, where).to.match(/^(abi|xen-emu|toolstack)\//);
        } else {
          expect(spec, where).to.match(/^node:/);
        }
      }
    }
  });
});
