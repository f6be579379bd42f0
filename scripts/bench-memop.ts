/**
 * Throughput of memory_op's reservation loops on x86_64, batched as a balloon driver batches them:
 * decrease_reservation of 512 order-0 extents, then populate_physmap of 512 back, repeated. Prints
 * extents per second (each op's extents counted); no assertion.
 *
 *   npx tsx scripts/bench-memop.ts [seconds]
 */

import {
  X86_64,
  XENMEM_decrease_reservation,
  XENMEM_populate_physmap,
  __HYPERVISOR_memory_op,
  xen_memory_reservation,
} from '../abi/index.js';
import { buildDomain } from '../xen-emu/builder.js';
import { Xen } from '../xen-emu/xen.js';

const BATCH = 512;
const seconds = Number(process.argv[2] ?? 3);

const xen = new Xen({ maxPage: 1 << 16 });
const built = buildDomain(xen, { abi: X86_64, memoryPages: 4096, maxPages: 8192 });
const dom = built.dom;
const argVa = built.scratchVa;
const listVa = built.scratchVa + 4096n;

const { bytes: arg, view } = xen_memory_reservation.alloc(X86_64);
view.extent_start = listVa;
view.nr_extents = BigInt(BATCH);
view.extent_order = 0;
view.mem_flags = 0;
view.domid = 0x7ff0; // DOMID_SELF
if (xen.guestStore(dom, argVa, arg) !== 0) throw new Error('argument page not writable');

// The pfns ballooned in and out: just above the populated range.
const gpfns = new Uint8Array(BATCH * 8);
const gv = new DataView(gpfns.buffer);
for (let i = 0; i < BATCH; i++) gv.setBigUint64(i * 8, BigInt(built.memoryPages + i), true);

function call(op: number): bigint {
  return xen.hypercall(dom.domid, __HYPERVISOR_memory_op, BigInt(op), argVa);
}

function populate(): void {
  xen.guestStore(dom, listVa, gpfns); // the guest names the pfns; Xen overwrites them with mfns
  const rc = call(XENMEM_populate_physmap);
  if (rc !== BigInt(BATCH)) throw new Error(`populate_physmap returned ${rc}`);
}

function decrease(): void {
  const rc = call(XENMEM_decrease_reservation); // the list holds the mfns populate wrote
  if (rc !== BigInt(BATCH)) throw new Error(`decrease_reservation returned ${rc}`);
}

populate();
// Warm up, then measure.
for (let i = 0; i < 2000; i++) {
  decrease();
  populate();
}
let cycles = 0;
const cpu0 = process.cpuUsage();
const start = process.hrtime.bigint();
const deadline = start + BigInt(Math.round(seconds * 1e9));
let now = start;
while (now < deadline) {
  for (let i = 0; i < 100; i++) {
    decrease();
    populate();
  }
  cycles += 100;
  now = process.hrtime.bigint();
}
const elapsed = Number(now - start) / 1e9;
const cpu = process.cpuUsage(cpu0);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const extents = cycles * BATCH * 2;
console.log(
  `memory_op x86_64, order 0, ${BATCH} extents per call: ${cycles} decrease+populate cycles in ${elapsed.toFixed(2)} s`,
);
console.log(`  ${(extents / elapsed / 1e6).toFixed(2)} M extents/s wall clock (decrease and populate extents counted)`);
console.log(`  ${(extents / cpuSeconds / 1e6).toFixed(2)} M extents/s of CPU time (${cpuSeconds.toFixed(2)} s; steadier on a busy machine)`);
console.log(`  ${((cycles * BATCH) / elapsed / 1e6).toFixed(2)} M round trips/s wall clock (one page out and back in)`);
