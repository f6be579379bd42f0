/** Running `xenabi` in process for the CLI tests: the exit code and what it printed. */

import { expect } from 'chai';
import { main } from '../../cli/program.js';

export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `xenabi ARGS...` through `main`, with stdout and stderr captured. */
export async function inProcess(...args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
  return { status, stdout, stderr };
}

/** A bad command line: exit 2, nothing on stdout, one `xenabi: error:` line and no stack. Returns the line. */
export function expectUsageError(r: Run): string {
  expect(r.status, r.stderr).to.equal(2);
  expect(r.stdout).to.equal('');
  expect(r.stderr).to.match(/^xenabi: error: [^\n]+\n$/);
  expect(r.stderr).to.not.match(/\n\s+at /);
  return r.stderr.trimEnd();
}
