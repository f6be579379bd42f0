/**
 * Summarises a `node --cpu-prof` profile the way docs/performance.md quotes them: self time per
 * function, self time per file, and inclusive time per function (a function counted once per
 * sample however deep it recurses).
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx scripts/bench-migrate.ts size --gib 4
 *   npx tsx scripts/cpu-profile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top 30]
 */

import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function fail(message: string): never {
  console.error(`cpu-profile-summary: ${message}`);
  process.exit(2);
}

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args[topAt + 1]) : 30;
const file = args.find((a, i) => !a.startsWith('--') && (topAt < 0 || i !== topAt + 1));
if (!file || !Number.isInteger(top) || top < 1) fail('usage: cpu-profile-summary.ts FILE.cpuprofile [--top N]');

let profile: CpuProfile;
try {
  profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
} catch (err) {
  fail(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
}
if (!Array.isArray(profile.nodes) || !Array.isArray(profile.samples) || !Array.isArray(profile.timeDeltas)) fail(`${file} is not a V8 CPU profile`);

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const fileOf = (n: ProfileNode): string => n.callFrame.url.split('/').slice(-2).join('/');
const nameOf = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'} ${fileOf(n)}:${n.callFrame.lineNumber + 1}`;

const sampleTime = new Map<number, number>();
profile.samples.forEach((id, i) => sampleTime.set(id, (sampleTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const self = new Map<string, number>();
const perFile = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
for (const [id, us] of sampleTime) {
  const node = byId.get(id)!;
  total += us;
  self.set(nameOf(node), (self.get(nameOf(node)) ?? 0) + us);
  perFile.set(fileOf(node), (perFile.get(fileOf(node)) ?? 0) + us);
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const key = nameOf(byId.get(at)!);
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  }
}

function table(title: string, m: Map<string, number>): void {
  console.log(`-- ${title}`);
  for (const [key, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${key}`);
  }
}
console.log(`${(total / 1000).toFixed(0)} ms sampled`);
table('self time by function', self);
table('self time by file', perFile);
table('inclusive time by function', inclusive);
