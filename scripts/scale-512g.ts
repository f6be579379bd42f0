/**
 * Scale check (design decision 5): builds a 512 GiB x86_64 PV domain (2^27 pages, the 3-level p2m
 * tree's limit) with the domain builder, checks a sample of p2m entries through the guest's own
 * page tables against the m2p, and prints wall time, process memory and the machine's host bytes.
 * Exit 1 when a sampled entry is wrong.
 *
 *   npm run scale:512g                       # wrap in /usr/bin/time -v for the peak RSS
 *   tsx scripts/scale-512g.ts --json         # one JSON line instead (what `npm run bench` reads)
 */

import { X86_64 } from '../abi/index.js';
import { Xen, buildDomain } from '../xen-emu/index.js';

const PAGES = 2 ** 27;
const MAX_PAGE = PAGES + 2 ** 16;
const SAMPLES = 100_000;

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** xorshift32 from a fixed seed: the same samples every run. */
function sampler(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function main(argv: readonly string[]): number {
  const json = argv.includes('--json');
  const t0 = process.hrtime.bigint();
  const xen = new Xen({ maxPage: MAX_PAGE });
  const built = buildDomain(xen, { abi: X86_64, memoryPages: PAGES });
  const t1 = process.hrtime.bigint();

  // Sample p2m entries through the guest's page tables: entry i names a frame whose m2p is i.
  const next = sampler(0x12345678);
  let bad = 0;
  for (let s = 0; s < SAMPLES; s++) {
    const pfn = s < 2 ? (s === 0 ? 0 : PAGES - 1) : next() % PAGES;
    const entry = xen.guestLoadWord(built.dom, built.p2mVa + BigInt(pfn) * 8n, 8);
    if (entry === undefined || xen.machine.m2pOf(Number(entry)) !== pfn || xen.machine.ownerOf(Number(entry)) !== built.dom.domid) {
      bad++;
      if (bad <= 5) console.error(`Fail: p2m[0x${pfn.toString(16)}], expected an owned mfn whose m2p is 0x${pfn.toString(16)}, got ${entry === undefined ? 'a fault' : `0x${entry.toString(16)}`}`);
    }
  }
  const t2 = process.hrtime.bigint();

  const mem = process.memoryUsage();
  const buildSeconds = Number(t1 - t0) / 1e9;
  const sampleSeconds = Number(t2 - t1) / 1e9;
  if (json) {
    console.log(JSON.stringify({ pages: PAGES, totPages: built.dom.totPages, buildSeconds, samples: SAMPLES, sampleSeconds, bad, rss: mem.rss, hostBytes: xen.machine.hostBytes }));
  } else {
    console.log(`built 512 GiB x86_64 domain: ${PAGES} pages, tot_pages ${built.dom.totPages}, machine max_page ${MAX_PAGE}`);
    console.log(`p2m at 0x${built.p2mVa.toString(16)}: ${built.p2mFrames} frames (+${built.nrP2mFrames - built.p2mFrames} page tables), bootstrap ${built.bootstrapPfns} pfns`);
    console.log(`build wall time: ${buildSeconds.toFixed(2)} s; ${SAMPLES} p2m samples checked in ${sampleSeconds.toFixed(2)} s, ${bad} bad`);
    console.log(
      `process.memoryUsage(): rss ${mib(mem.rss)}, heapTotal ${mib(mem.heapTotal)}, heapUsed ${mib(mem.heapUsed)}, external ${mib(mem.external)}, arrayBuffers ${mib(mem.arrayBuffers)}`,
    );
    console.log(`machine hostBytes: ${mib(xen.machine.hostBytes)}`);
  }
  return bad > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
