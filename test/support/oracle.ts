/**
 * Tests that need an oracle (gcc with multilib, Xen's public headers from libxen-dev, pahole) skip
 * with a stated reason where it is missing, and fail instead when CI=true: CI must have them
 * (scripts/setup installs them).
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Why the oracle is missing, or undefined when it is there. */
export type OracleCheck = () => string | undefined;

/** Skips the test (or hook) with the reason, or fails in CI. */
export function requireOracle(ctx: Mocha.Context, check: OracleCheck): void {
  const missing = check();
  if (missing === undefined) return;
  if (process.env.CI === 'true') throw new Error(`oracle unavailable in CI: ${missing}; scripts/setup must install it`);
  console.log(`      skipped: ${missing}`);
  ctx.skip();
}

/** gcc -m32 and -m64 both build a program that includes Xen's public headers. */
export const gccWithXenHeaders: OracleCheck = () => {
  const dir = mkdtempSync(join(tmpdir(), 'xenabi-oracle-'));
  try {
    const src = join(dir, 't.c');
    writeFileSync(src, '#include <stdint.h>\n#include <xen/xen.h>\nint main(void) { return sizeof(struct shared_info) == 0; }\n');
    for (const flag of ['-m32', '-m64']) {
      const r = spawnSync(process.env.CC ?? 'gcc', [flag, '-D__XEN_INTERFACE_VERSION__=0x00040e00', src, '-o', join(dir, 't')], { encoding: 'utf8' });
      if (r.error) return `no C compiler (${r.error.message}); install Debian packages gcc gcc-multilib libxen-dev`;
      if (r.status !== 0) return `gcc ${flag} cannot build against Xen's headers (${r.stderr.split('\n').find((l) => /error/.test(l)) ?? r.stderr.trim()}); install Debian packages gcc-multilib libxen-dev`;
    }
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

export const paholeInstalled: OracleCheck = () => {
  const r = spawnSync('pahole', ['--version'], { encoding: 'utf8' });
  return r.error || r.status !== 0 ? 'pahole is not installed; install Debian package pahole' : undefined;
};

export function all(...checks: OracleCheck[]): OracleCheck {
  return () => checks.map((c) => c()).find((m) => m !== undefined);
}
