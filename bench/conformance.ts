/**
 * Figure 4 of issue 8: `xenabi conformance` with no arguments (the whole built-in matrix, --jobs 2,
 * 16 MiB guests), run as a child process with the built dist/ CLI under `/usr/bin/time -v`, so the
 * wall time and peak RSS are measured from outside, as a user would see them. Target: <= 60 s on
 * this 2-core machine. --quick runs one shard of eight. The run must exit 0 (every cell as
 * expected); any other exit code makes the benchmark broken.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, BenchModule, BenchOutput } from './context.js';
import type { Figure } from './results.js';
import { parseTimeVerbose } from './scale.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = 'dist/cli/xenabi.js';
const TIME = '/usr/bin/time';

export function benchConformance(ctx: BenchContext): BenchOutput {
  if (!existsSync(join(ROOT, CLI))) throw new Error(`${CLI} is missing: run npm run build first (npm run bench does)`);
  const dir = mkdtempSync(join(tmpdir(), 'xenabi-bench-'));
  try {
    const file = join(dir, 'time.txt');
    const args = ['conformance', '--jobs', '2', '--reporter', 'json', ...(ctx.quick ? ['--shard', '1/8'] : [])];
    const r = spawnSync(TIME, ['-v', '-o', file, process.execPath, CLI, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`xenabi ${args.join(' ')} exited ${r.status}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    const doc = JSON.parse(r.stdout) as { summary: { total: number; unexpected: number; verdicts: Record<string, number> } };
    const time = parseTimeVerbose(readFileSync(file, 'utf8'));
    const what = `xenabi conformance --jobs 2${ctx.quick ? ' --shard 1/8' : ''} (${doc.summary.total} cells)`;
    const figures: Figure[] = [
      {
        figure: '4',
        name: `${what}: process wall time`,
        value: time.wallSeconds,
        unit: 's',
        machine: ctx.machine,
        ...(ctx.quick ? {} : { target: { of: 'value', op: '<=', bound: 60 } as const }),
        detail: `user ${time.userSeconds} s, system ${time.systemSeconds} s; ${doc.summary.unexpected} unexpected; ${JSON.stringify(doc.summary.verdicts)}`,
      },
      { figure: '4', name: `${what}: wall time per cell`, value: (time.wallSeconds * 1000) / Math.max(1, doc.summary.total), unit: 'ms/cell', machine: ctx.machine },
      { figure: '4', name: `${what}: peak RSS (main thread and workers)`, value: time.maxRssKiB / 1024, unit: 'MiB', machine: ctx.machine },
    ];
    return { figures };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const conformanceModule: BenchModule = { id: 'conformance', title: 'figure 4: xenabi conformance, the built-in matrix', run: benchConformance };
