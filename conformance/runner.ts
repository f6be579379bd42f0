/**
 * Runs cells: in this thread (`jobs` 1) or on a pool of worker threads, handing each free worker
 * the next cell. Results come back in cell order whatever order they finished in. A worker that
 * dies takes its cell with it: that cell is CRASH (it produced no verdict) and a fresh worker
 * takes over.
 */

import { Worker } from 'node:worker_threads';
import { cellBase, runCell, type CellResult, type CellSpec } from './cell.js';

export interface RunOptions {
  /** Worker threads (1: run in this thread). */
  readonly jobs: number;
  /** Called as each cell finishes. */
  readonly onResult?: (result: CellResult, done: number, total: number) => void;
}

/** How to start a worker from here: the compiled worker.js, or worker.ts through tsx's loader. */
function spawnWorker(): Worker {
  const here = import.meta.url;
  if (here.endsWith('.js')) return new Worker(new URL('./worker.js', here));
  const worker = new URL('./worker.ts', here).href;
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(worker)}); });`;
  return new Worker(boot, { eval: true, execArgv: [] });
}

function crashed(spec: CellSpec, why: string): CellResult {
  return { ...cellBase(spec, performance.now()), verdict: 'CRASH', reason: why, rules_violated: [], violations: [], ms: 0 };
}

export async function runCells(cells: readonly CellSpec[], options: RunOptions): Promise<CellResult[]> {
  const results: CellResult[] = new Array(cells.length);
  let done = 0;
  const finish = (i: number, r: CellResult): void => {
    results[i] = r;
    done++;
    options.onResult?.(r, done, cells.length);
  };
  const jobs = Math.max(1, Math.min(options.jobs, cells.length));
  if (jobs <= 1) {
    for (let i = 0; i < cells.length; i++) finish(i, await runCell(cells[i]!));
    return results;
  }
  let next = 0;
  await new Promise<void>((resolveAll) => {
    let live = 0;
    const start = (): void => {
      if (next >= cells.length) {
        if (live === 0) resolveAll();
        return;
      }
      const worker = spawnWorker();
      live++;
      let current = -1;
      const feed = (): void => {
        if (next >= cells.length) {
          current = -1;
          void worker.terminate();
          return;
        }
        current = next++;
        worker.postMessage({ index: current, spec: cells[current] });
      };
      worker.on('message', (m: { index: number; result: CellResult }) => {
        finish(m.index, m.result);
        feed();
      });
      let ended = false;
      const end = (why: string | undefined): void => {
        if (ended) return;
        ended = true;
        live--;
        if (current >= 0 && results[current] === undefined) {
          finish(current, crashed(cells[current]!, why ?? 'the worker exited without a result'));
          start();
        }
        if (live === 0 && next >= cells.length) resolveAll();
      };
      worker.on('error', (err) => end(`the worker died: ${err instanceof Error ? err.message : String(err)}`));
      worker.on('exit', (code) => end(code === 0 ? undefined : `the worker exited with code ${code}`));
      feed();
    };
    for (let i = 0; i < jobs; i++) start();
  });
  return results;
}
