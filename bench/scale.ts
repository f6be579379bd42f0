/**
 * Scale (design decision 5, the ground issue 8's figure 2 stands on): scripts/scale-512g.ts builds a
 * 512 GiB x86_64 domain (2^27 pfns) and checks 100000 p2m samples, run as a child process under
 * `/usr/bin/time -v`, so wall time and peak RSS are measured from outside the process. The build
 * time per pfn is compared with the same-run baseline over 2^27 entries. Skipped in --quick (it
 * takes 10-20 s and 2 GiB).
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, BenchModule, BenchOutput } from './context.js';
import type { Figure } from './results.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = 'scripts/scale-512g.ts';
const TIME = '/usr/bin/time';

/** What scripts/scale-512g.ts --json prints. */
interface ScaleReport {
  readonly pages: number;
  readonly totPages: number;
  readonly buildSeconds: number;
  readonly samples: number;
  readonly sampleSeconds: number;
  readonly bad: number;
  readonly rss: number;
  readonly hostBytes: number;
}

/** What GNU time -v says about the child. */
export interface TimeReport {
  readonly wallSeconds: number;
  readonly maxRssKiB: number;
  readonly userSeconds: number;
  readonly systemSeconds: number;
}

/** Parses GNU time's -v report; throws when a line it needs is missing. */
export function parseTimeVerbose(text: string): TimeReport {
  const line = (label: string): string => {
    const m = new RegExp(`^\\s*${label.replace(/[()]/g, '\\$&')}:\\s*(.+)$`, 'm').exec(text);
    if (!m) throw new Error(`/usr/bin/time -v: no '${label}' line in its report`);
    return m[1]!.trim();
  };
  const elapsed = line('Elapsed (wall clock) time (h:mm:ss or m:ss)');
  const parts = elapsed.split(':').map(Number);
  if (parts.some((p) => !Number.isFinite(p))) throw new Error(`/usr/bin/time -v: elapsed time '${elapsed}'`);
  const wallSeconds = parts.reduce((acc, p) => acc * 60 + p, 0);
  return {
    wallSeconds,
    maxRssKiB: Number(line('Maximum resident set size (kbytes)')),
    userSeconds: Number(line('User time (seconds)')),
    systemSeconds: Number(line('System time (seconds)')),
  };
}

export function benchScale(ctx: BenchContext): BenchOutput {
  const name = '512 GiB x86_64 domain: build + 100000 p2m samples';
  if (ctx.quick) {
    return { figures: [], skipped: [{ figure: 'scale', name, reason: 'not in --quick (10-20 s and 2 GiB; run npm run bench)' }] };
  }
  if (!existsSync(TIME)) {
    return { figures: [], skipped: [{ figure: 'scale', name, reason: `${TIME} is missing (Debian package time): peak RSS must be measured from outside` }] };
  }
  const dir = mkdtempSync(join(tmpdir(), 'xenabi-bench-'));
  try {
    const report = join(dir, 'time.txt');
    const r = spawnSync(TIME, ['-v', '-o', report, process.execPath, '--import', 'tsx', SCRIPT, '--json'], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
    if (r.error) throw r.error;
    if (r.status !== 0) {
      throw new Error(`${SCRIPT} exited ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
    const child = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as ScaleReport;
    if (child.bad !== 0 || child.totPages !== child.pages) {
      throw new Error(`Fail: ${SCRIPT}, expected ${child.pages} pages and no bad samples, got ${child.totPages} pages, ${child.bad} bad`);
    }
    const time = parseTimeVerbose(readFileSync(report, 'utf8'));
    const nsPerPfn = (child.buildSeconds * 1e9) / child.pages;
    const base = ctx.baselines.of(child.pages);
    const figures: Figure[] = [
      {
        figure: 'scale',
        name: `${name}: process wall time`,
        value: time.wallSeconds,
        unit: 's',
        machine: ctx.machine,
        detail: `/usr/bin/time -v of node --import tsx ${SCRIPT} (start-up included); CPU user ${time.userSeconds} s, system ${time.systemSeconds} s; build alone ${child.buildSeconds.toFixed(2)} s, samples ${child.sampleSeconds.toFixed(2)} s`,
      },
      {
        figure: 'scale',
        name: `${name}: build time per pfn vs baseline`,
        value: nsPerPfn,
        unit: 'ns/pfn',
        machine: ctx.machine,
        baseline: base.totalNs,
        baselineUnit: 'ns/entry',
        ratio: nsPerPfn / base.totalNs,
        detail: `buildDomain's wall time (as the child measured it) / 2^27 pfns; baseline: scan + copy of 2^27 8-byte entries`,
      },
      {
        figure: 'scale',
        name: `${name}: peak RSS`,
        value: time.maxRssKiB / 2 ** 20,
        unit: 'GiB',
        machine: ctx.machine,
        detail: `/usr/bin/time -v maximum resident set size of the child; machine hostBytes ${(child.hostBytes / 2 ** 20).toFixed(0)} MiB`,
      },
    ];
    return { figures };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const scaleModule: BenchModule = {
  id: 'scale',
  title: 'scale: a 512 GiB x86_64 domain, wall time and peak RSS from outside',
  run: benchScale,
};
