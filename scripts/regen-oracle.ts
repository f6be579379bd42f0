/**
 * Regenerates test/fixtures/xen-headers-oracle.json: compiles the layout probe against the
 * installed Xen headers with gcc -m32 and -m64 and records what the compiler reports, so that
 * machines without the compiler still check abi/ against real figures.
 *
 *   npm run oracle:regen        (needs Debian packages gcc-multilib and libxen-dev)
 */

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  ABI_CONSTANTS,
  ABI_STRUCTS,
  GUEST_ABIS,
  compareWithOracle,
  compilerVersion,
  formatMismatch,
  runProbe,
  XEN_INTERFACE_VERSION,
  ProbeError,
  GNTTABOP_error_msgs,
} from '../abi/index.js';
import { ORACLE_FIXTURE_PATH, type OracleFixture } from '../test/abi/oracle-fixture.js';

function headersPackage(): string {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Package} ${Version}', 'libxen-dev'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown (dpkg-query failed)';
}

try {
  const abis = Object.fromEntries(
    GUEST_ABIS.map((abi) => [abi.name, runProbe({ abi, structs: ABI_STRUCTS, constants: ABI_CONSTANTS })]),
  ) as OracleFixture['abis'];
  const fixture: OracleFixture = {
    regenerate: 'npm run oracle:regen',
    compiler: compilerVersion() ?? 'unknown',
    headers: headersPackage(),
    interfaceVersion: XEN_INTERFACE_VERSION,
    abis,
  };
  writeFileSync(ORACLE_FIXTURE_PATH, `${JSON.stringify(fixture, null, 1)}\n`);
  let failed = false;
  for (const abi of GUEST_ABIS) {
    const report = compareWithOracle(abi, ABI_STRUCTS, ABI_CONSTANTS, abis[abi.name], GNTTABOP_error_msgs);
    console.log(
      `${abi.name}: ${report.structs} structs, ${report.fields} fields, ${report.constants} constants, ` +
        `${report.messages} GNTST messages compared; ${report.mismatches.length} mismatches`,
    );
    for (const m of report.mismatches) console.log(formatMismatch(m));
    failed ||= report.mismatches.length > 0;
  }
  console.log(`wrote ${fileURLToPath(ORACLE_FIXTURE_PATH)}`);
  process.exitCode = failed ? 1 : 0;
} catch (e) {
  if (!(e instanceof ProbeError)) throw e;
  console.error(`regen-oracle: error: ${e.message}`);
  process.exitCode = 2;
}
