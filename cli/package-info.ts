/**
 * The kit's package.json, found at run time by walking up from the calling module, so the version
 * is right from `tsx cli/xenabi.ts` (one level up) and from `dist/cli/xenabi.js` (two levels up).
 */

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliFailure } from './errors.js';

export const PACKAGE_NAME = 'xen-pv-abi-kit';

/** Path of the nearest package.json above `moduleUrl` whose `name` is `name`. */
export function findPackageJson(moduleUrl: string, name: string = PACKAGE_NAME): string {
  const start = dirname(fileURLToPath(moduleUrl));
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: unknown };
      if (pkg.name === name) return candidate;
    }
    if (dirname(dir) === dir) break;
  }
  throw new CliFailure(`cannot find the package.json of ${name} above ${start}`);
}

/** The `version` of the kit's package.json. */
export function packageVersion(moduleUrl: string = import.meta.url): string {
  const path = findPackageJson(moduleUrl);
  const { version } = JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown };
  if (typeof version !== 'string') throw new CliFailure(`${path} has no version`);
  return version;
}
