/**
 * Xen's own stream verifier, `verify-stream-v2` from Debian's xen-utils-4.17, as the oracle for the
 * streams the kit writes. scripts/setup unpacks the package into .oracles/xen-utils;
 * `XENABI_XEN_UTILS` may point at another unpacked copy.
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OracleCheck } from '../../support/oracle.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Where xen-utils-4.17 was unpacked. */
export function xenUtilsDir(): string {
  return process.env['XENABI_XEN_UTILS'] ?? join(ROOT, '.oracles', 'xen-utils');
}

export function verifyStreamV2Paths(): { script: string; pythonPath: string } {
  const base = join(xenUtilsDir(), 'usr', 'lib', 'xen-4.17');
  return { script: join(base, 'bin', 'verify-stream-v2'), pythonPath: join(base, 'lib', 'python') };
}

export const verifyStreamV2Installed: OracleCheck = () => {
  const { script } = verifyStreamV2Paths();
  if (!existsSync(script)) return `verify-stream-v2 not found at ${script}; run scripts/setup (it unpacks Debian's xen-utils-4.17 into .oracles/xen-utils)`;
  const py = spawnSync('python3', ['--version'], { encoding: 'utf8' });
  if (py.error || py.status !== 0) return 'python3 is not installed';
  return undefined;
};

export interface VerifyResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The command line, for messages and the closing note. */
  readonly command: string;
}

/** Runs `verify-stream-v2 -v -i FILE -f FORMAT`. */
export function runVerifyStreamV2(file: string, format: 'libxc' | 'libxl' | 'xl' = 'libxc'): VerifyResult {
  const { script, pythonPath } = verifyStreamV2Paths();
  const args = [script, '-v', '-i', file, '-f', format];
  const r = spawnSync('python3', args, { encoding: 'utf8', env: { ...process.env, PYTHONPATH: pythonPath }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, command: `PYTHONPATH=${pythonPath} python3 ${args.join(' ')}` };
}
