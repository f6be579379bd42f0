/**
 * The committed compiler figures: test/fixtures/xen-headers-oracle.json, made by
 * `npm run oracle:regen` (scripts/regen-oracle.ts) on a machine with gcc-multilib and libxen-dev.
 */

import { readFileSync } from 'node:fs';
import type { GuestAbiName, ProbeResult } from '../../abi/index.js';

export const ORACLE_FIXTURE_PATH = new URL('../fixtures/xen-headers-oracle.json', import.meta.url);

export interface OracleFixture {
  readonly regenerate: string;
  readonly compiler: string;
  readonly headers: string;
  readonly interfaceVersion: string;
  readonly abis: Record<GuestAbiName, ProbeResult>;
}

export function readOracleFixture(): OracleFixture {
  return JSON.parse(readFileSync(ORACLE_FIXTURE_PATH, 'utf8')) as OracleFixture;
}
