/**
 * docs/layouts/ is what `npm run docs` generates from ABI_STRUCTS today: the markdown (README.md
 * and one file per struct) and layouts.html are regenerated in-process through the CLI's own code
 * path into a temp dir and compared byte for byte, and no stale file is left over.
 */

import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../cli/program.js';

const committed = fileURLToPath(new URL('../../docs/layouts', import.meta.url));
const HOW_TO_FIX = 'run `npm run docs` and commit docs/layouts/';

function filesIn(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

describe('docs/layouts is fresh', function () {
  this.timeout(60_000);

  it('matches `xenabi layout --format md|html --out` byte for byte', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'xenabi-docs-fresh-'));
    try {
      let stderr = '';
      const io = { out: () => undefined, err: (text: string) => void (stderr += text) };
      for (const format of ['md', 'html']) {
        const code = await main(['layout', '--format', format, '--out', dir], io);
        expect(code, `xenabi layout --format ${format}: ${stderr}`).to.equal(0);
      }
      const generated = filesIn(dir);
      expect(generated, 'generated files').to.include.members(['README.md', 'layouts.html']);
      const present = filesIn(committed);
      const problems = [
        ...generated.filter((f) => !present.includes(f)).map((f) => `${f} missing`),
        ...present.filter((f) => !generated.includes(f)).map((f) => `${f} stale (no longer generated)`),
        ...generated
          .filter((f) => present.includes(f))
          .filter((f) => !readFileSync(join(dir, f)).equals(readFileSync(join(committed, f))))
          .map((f) => `${f} differs`),
      ];
      expect(problems, `docs/layouts/ is out of date (${problems.join('; ')}): ${HOW_TO_FIX}`).to.deep.equal([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
