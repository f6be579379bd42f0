/**
 * docs/layouts/layouts.html as a browser shows it: headless Chromium (Debian's /usr/bin/chromium,
 * package `chromium`) loads the file with networking off, and the rendered DOM holds a layout
 * table per struct and ABI; a screenshot of it is a real, non-blank PNG.
 * Without Chromium the suite is skipped with its reason, except on CI (CI=true), where it fails.
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ABI_STRUCTS } from '../../abi/index.js';
import { GUEST_ABIS } from '../../abi/guest-abi.js';

/** Debian's Chromium; XENABI_TEST_CHROMIUM points elsewhere (e.g. a missing path, to see the skip). */
const CHROMIUM = process.env.XENABI_TEST_CHROMIUM ?? '/usr/bin/chromium';
const page = fileURLToPath(new URL('../../docs/layouts/layouts.html', import.meta.url));
const WIDTH = 1200;
const HEIGHT = 2000;

/** What to do without Chromium: fail on CI, where the browser check must run; skip elsewhere. */
export function withoutChromium(env: NodeJS.ProcessEnv): { fail: boolean; reason: string } {
  const reason = `${CHROMIUM} not found: install the Debian package chromium (apt-get install chromium)`;
  return { fail: env.CI === 'true', reason };
}

function chromium(profile: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      `--user-data-dir=${profile}`,
      ...args,
      pathToFileURL(page).href,
    ],
    { encoding: 'utf8', timeout: 50_000, maxBuffer: 256 * 1024 * 1024 },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Png {
  readonly width: number;
  readonly height: number;
  /** Distinct byte values in the inflated image data: a blank page has a handful. */
  readonly distinctBytes: number;
}

function readPng(bytes: Buffer): Png {
  expect(bytes.subarray(0, 8).toString('hex'), 'PNG signature').to.equal('89504e470d0a1a0a');
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  for (let at = 8; at + 8 <= bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
    }
    if (type === 'IDAT') idat.push(data);
    at += 12 + length;
  }
  return { width, height, distinctBytes: new Set(inflateSync(Buffer.concat(idat))).size };
}

describe('docs/layouts/layouts.html in headless Chromium', function () {
  this.timeout(60_000);
  let profile = '';

  before(function () {
    if (!existsSync(CHROMIUM)) {
      const { fail, reason } = withoutChromium(process.env);
      if (fail) throw new Error(`${reason}; CI=true, so this check must run`);
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
    expect(existsSync(page), `${page} missing: run \`npm run docs\``).to.equal(true);
  });

  beforeEach(function () {
    profile = mkdtempSync(join(tmpdir(), 'xenabi-chromium-'));
  });

  afterEach(function () {
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('renders a layout table for every struct and ABI', function () {
    const r = chromium(profile, '--dump-dom');
    expect(r.status, r.stderr.slice(-2000)).to.equal(0);
    const dom = r.stdout;
    expect(dom).to.match(/<html[\s>]/);
    expect(dom).to.include('<h1>Xen x86 PV guest ABI layouts</h1>');
    for (const s of ABI_STRUCTS) {
      expect(dom, `section of ${s.name} (if missing, run \`npm run docs\`)`).to.include(`id="${s.kind}-${s.name}"`);
      for (const abi of GUEST_ABIS) {
        expect(dom, `table of ${s.name} on ${abi.name}`).to.include(
          `<table class="layout" data-struct="${s.name}" data-abi="${abi.name}">`,
        );
      }
    }
    const tables = dom.match(/<table class="layout"/g) ?? [];
    expect(tables.length).to.equal(ABI_STRUCTS.length * GUEST_ABIS.length);
    // The parser kept the rows inside the tables: every layout table has a body with rows.
    expect(dom.match(/<table class="layout"[^>]*>\s*<thead><tr>/g) ?? []).to.have.length(tables.length);
  });

  it('takes a non-blank screenshot', function () {
    const png = join(profile, 'layouts.png');
    const r = chromium(profile, `--screenshot=${png}`, `--window-size=${WIDTH},${HEIGHT}`);
    expect(r.status, r.stderr.slice(-2000)).to.equal(0);
    expect(existsSync(png), 'screenshot written').to.equal(true);
    const bytes = readFileSync(png);
    expect(bytes.length, 'PNG size').to.be.greaterThan(50_000);
    const image = readPng(bytes);
    expect([image.width, image.height]).to.deep.equal([WIDTH, HEIGHT]);
    expect(image.distinctBytes, 'distinct byte values (a blank page has about 4)').to.be.greaterThan(100);
  });
});

describe('headless Chromium check without Chromium', function () {
  it('fails on CI and names the Debian package; skips elsewhere', function () {
    const ci = withoutChromium({ CI: 'true' });
    expect(ci.fail).to.equal(true);
    expect(ci.reason).to.include('Debian package chromium');
    expect(withoutChromium({}).fail).to.equal(false);
    expect(withoutChromium({ CI: 'false' }).fail).to.equal(false);
  });
});
