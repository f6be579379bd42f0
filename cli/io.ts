/**
 * Where the CLI's output goes. Commands write through a `CliIo` so tests can run them in-process;
 * the entry point wires it to the process streams.
 */

import { errorLine } from './errors.js';

export interface CliIo {
  /** Standard output: the documents a command prints. */
  out(text: string): void;
  /** Standard error: help after a usage error, and error lines. */
  err(text: string): void;
}

export function processIo(): CliIo {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
  };
}

/**
 * A reader that went away (`xenabi layout | head -1`) is not an error: exit 0 without a word.
 * Any other failure of the stream (a full disk) is one error line and exit 1, never a stack trace.
 */
export function exitQuietlyOnEpipe(
  stream: NodeJS.WritableStream,
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') {
      exit(0);
      return;
    }
    process.stderr.write(errorLine(`cannot write output: ${err.message}`));
    exit(1);
  });
}
