/**
 * Figures 2 and 3 of issue 8, each migration run by scripts/bench-migrate.ts as a child process
 * under `/usr/bin/time -v` (wall time and peak RSS measured from outside):
 *
 * - 2: a live migration of a `linear` x86_64 guest with `deep-tracking` while about 1% of its
 *   pages are ballooned per pass, guest build and final verification included: wall time, pages
 *   per second, peak RSS, and the cost per pfn per pass against the same-run baseline (scan + copy
 *   of as many 8-byte entries as the guest has pfns). --quick: 1 GiB; full: 1 and 4 GiB.
 * - 3: resend precision: pfns resent because of p2m changes / pfns whose mapping really changed
 *   (64 pfns ballooned out, scrub off, each just after it was sent), for all three mechanisms and
 *   for frame-granularity resending (option 3 alone) next to it.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, BenchModule, BenchOutput } from './context.js';
import type { Figure } from './results.js';
import { parseTimeVerbose, type TimeReport } from './scale.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = 'scripts/bench-migrate.ts';
const TIME = '/usr/bin/time';

function runChild(args: readonly string[]): { report: Record<string, unknown>; time: TimeReport } {
  const dir = mkdtempSync(join(tmpdir(), 'xenabi-bench-'));
  try {
    const file = join(dir, 'time.txt');
    const r = spawnSync(TIME, ['-v', '-o', file, process.execPath, '--import', 'tsx', SCRIPT, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 << 20 });
    if (r.error) throw r.error;
    const last = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0) throw new Error(`${SCRIPT} ${args.join(' ')} exited ${r.status}: ${last || r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    return { report: JSON.parse(last) as Record<string, unknown>, time: parseTimeVerbose(readFileSync(file, 'utf8')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function benchMigration(ctx: BenchContext): BenchOutput {
  if (!existsSync(TIME)) {
    return { figures: [], skipped: [{ figure: '2', name: 'live migration', reason: `${TIME} is missing (Debian package time): peak RSS must be measured from outside` }] };
  }
  const figures: Figure[] = [];
  for (const gib of ctx.quick ? [1] : [1, 4]) {
    ctx.log(`bench: migration of a ${gib} GiB guest...`);
    const { report, time } = runChild(['size', '--gib', String(gib)]);
    const pages = report['pages'] as number;
    const seconds = report['seconds'] as number;
    const pfnRounds = report['pfnRounds'] as number;
    const base = ctx.baselines.of(pages);
    const timings = report['timings'] as { setup: number; migrate: number; toolstack: number; verify: number };
    // The rounds' own cost: time inside the save's steps (which drive the in-process restore of
    // every record) per pfn sent, against scanning and copying one 8-byte entry.
    const nsPerPfnRound = (timings.toolstack * 1e6) / pfnRounds;
    const nsPerPfnWhole = (seconds * 1e9) / pfnRounds;
    const name = `live migration, linear x86_64 ${gib} GiB, deep-tracking, ~1% ballooned per pass`;
    const phases = `setup (build + boot) ${timings.setup} ms, migration ${timings.migrate} ms (of which save + restore steps ${timings.toolstack} ms), verification ${timings.verify} ms`;
    const detail = `${report['rounds']} passes, ${pfnRounds} pfn-sends, ${report['pagesSent']} pages of data, ${report['resentP2m']} resent for p2m changes, ${report['balloonOps']} balloon operations; outcome ${report['outcome']}; ${phases}`;
    figures.push(
      { figure: '2', name: `${name}: wall time`, value: time.wallSeconds, unit: 's', machine: ctx.machine, detail: `/usr/bin/time -v of the child (node start-up, guest build, save, restore, verification); in-process ${seconds.toFixed(2)} s; ${detail}` },
      { figure: '2', name: `${name}: pages per second`, value: pages / seconds, unit: 'pages/s', machine: ctx.machine, detail: 'guest pages / in-process wall time (build to verdict)' },
      { figure: '2', name: `${name}: peak RSS`, value: time.maxRssKiB / 2 ** 20, unit: 'GiB', machine: ctx.machine, detail: '/usr/bin/time -v maximum resident set size' },
      {
        figure: '2',
        name: `${name}: pages ballooned per pass`,
        value: report['balloonedPerPass'] as number,
        unit: '% of pages',
        machine: ctx.machine,
        detail: `balloon operations (out and in) / passes over the guest's memory (pfn-sends / pages); ${report['balloonOps']} operations`,
      },
      {
        figure: '2',
        name: `${name}: save + restore time per pfn per pass vs baseline`,
        value: nsPerPfnRound,
        unit: 'ns/pfn',
        machine: ctx.machine,
        baseline: base.totalNs,
        baselineUnit: 'ns/entry',
        ratio: nsPerPfnRound / base.totalNs,
        target: { of: 'ratio', op: '<=', bound: 10 },
        detail: `time inside the save's steps (page types, contents, tracking, the in-process channel and the restore it drives) / pfn-sends over all passes; baseline: scan + copy of ${pages} 8-byte entries`,
      },
      {
        figure: '2',
        name: `${name}: whole run per pfn per pass vs baseline`,
        value: nsPerPfnWhole,
        unit: 'ns/pfn',
        machine: ctx.machine,
        baseline: base.totalNs,
        baselineUnit: 'ns/entry',
        ratio: nsPerPfnWhole / base.totalNs,
        detail: `in-process wall time (build, boot, workload, save, restore, verification) / pfn-sends; ${phases}`,
      },
    );
  }
  for (const [mechanisms, label] of [
    ['2,3,4', 'deep-tracking (options 2+3+4)'],
    ['3', 'frame granularity (option 3 alone)'],
  ] as const) {
    ctx.log(`bench: resend precision, ${label}...`);
    const { report } = runChild(['precision', '--mechanisms', mechanisms, '--changes', '64']);
    figures.push({
      figure: '3',
      name: `resend precision, ${label}`,
      value: report['precision'] as number,
      unit: 'resent/changed',
      machine: ctx.machine,
      ...(mechanisms === '2,3,4' ? { target: { of: 'value' as const, op: '<=' as const, bound: 1.05 } } : {}),
      detail: `${report['resentP2m']} pfns resent for p2m changes / ${report['changed']} pfns ballooned out after being sent (64 MiB linear x86_64, scrub off); outcome ${report['outcome']}`,
    });
  }
  return { figures };
}

export const migrationModule: BenchModule = {
  id: 'migration',
  title: 'live migration at scale (figure 2) and resend precision (figure 3)',
  run: benchMigration,
};
