/**
 * A worker thread of the runner: runs the cells it is sent, one at a time, and posts each result.
 * Started by runner.ts (compiled: this file's .js; from source: through tsx's loader).
 */

import { parentPort } from 'node:worker_threads';
import { runCell, type CellSpec } from './cell.js';

interface CellMessage {
  readonly index: number;
  readonly spec: CellSpec;
}

const port = parentPort;
if (port) {
  port.on('message', (m: CellMessage) => {
    void runCell(m.spec).then((result) => port.postMessage({ index: m.index, result }));
  });
}
