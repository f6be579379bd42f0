/**
 * Throughput of the emulated guest on a 64 GiB x86_64 domain (2^24 pages): builds and boots it
 * (tree+linear, so both structures are maintained), then runs a seeded workload for a while and
 * prints guest operations per second and atomic steps per second (wall clock and CPU time).
 *
 *   npx tsx scripts/bench-guest.ts [seconds] [workload] [personality]
 *   npx tsx scripts/bench-guest.ts 10 'balloon=10%,exchange=1%,grants=5%,growth=0.5%,writes=100%'
 */

import { X86_64 } from '../abi/index.js';
import { buildDomain } from '../xen-emu/builder.js';
import { Xen } from '../xen-emu/xen.js';
import { PvGuest, Workload, formatWorkloadRates, parseGuestVariant, parseWorkloadRates, startInfoFlagsFor } from '../guest-emu/index.js';

const PAGES = 2 ** 24;
const seconds = Number(process.argv[2] ?? 10);
const rates = parseWorkloadRates(process.argv[3] ?? 'balloon=10%,exchange=1%,grants=5%,growth=0.5%,writes=100%');
const variant = parseGuestVariant(process.argv[4] ?? 'tree+linear');
const SEED = 20261126;

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const t0 = process.hrtime.bigint();
const xen = new Xen({ maxPage: PAGES + 2 ** 20 });
const built = buildDomain(xen, { abi: X86_64, memoryPages: PAGES, maxPages: PAGES + 4096, flags: startInfoFlagsFor(variant.personality) });
const t1 = process.hrtime.bigint();
const g = PvGuest.start(built, xen, { variant });
const t2 = process.hrtime.bigint();
const peer = PvGuest.start(buildDomain(xen, { abi: X86_64, memoryPages: 2048, flags: startInfoFlagsFor('linear') }), xen, { variant: 'linear' });
console.log(`64 GiB x86_64 ${variant.name} guest: build ${(Number(t1 - t0) / 1e9).toFixed(2)} s, boot ${(Number(t2 - t1) / 1e9).toFixed(2)} s`);
console.log(`workload ${formatWorkloadRates(rates)}, seed ${SEED}, ${seconds} s`);

const w = new Workload(g, { rates, seed: SEED, peer });
const run = w.run();
// Warm up (JIT), then measure.
for (let i = 0; i < 20_000; i++) run.next();
const opsBefore = Object.values(w.stats.operations).reduce((a, b) => a + b, 0);
let steps = 0;
const cpu0 = process.cpuUsage();
const start = process.hrtime.bigint();
const deadline = start + BigInt(Math.round(seconds * 1e9));
let now = start;
while (now < deadline) {
  for (let i = 0; i < 1000; i++) {
    run.next();
    steps++;
  }
  now = process.hrtime.bigint();
}
const elapsed = Number(now - start) / 1e9;
const cpu = process.cpuUsage(cpu0);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const ops = Object.values(w.stats.operations).reduce((a, b) => a + b, 0) - opsBefore;
console.log(`  ${ops} operations, ${steps} atomic steps in ${elapsed.toFixed(2)} s`);
console.log(`  ${(ops / elapsed).toFixed(0)} operations/s wall clock, ${(ops / cpuSeconds).toFixed(0)} operations/s of CPU time`);
console.log(`  ${(steps / elapsed).toFixed(0)} steps/s wall clock`);
console.log(`  operations: ${JSON.stringify(w.stats.operations)}`);
console.log(`  p2m structural changes ${g.stats.structuralChanges}, generation ${g.readShared('p2m_generation')}, max_pfn 0x${g.readShared('max_pfn').toString(16)}`);
const mem = process.memoryUsage();
console.log(`  rss ${mib(mem.rss)}, machine host bytes ${mib(xen.machine.hostBytes)}`);
