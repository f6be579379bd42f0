/**
 * Run by bulk-populate.test.ts in a child `node --expose-gc`: whether a Machine reuses the slab
 * slots of dropped page bytes once the collector has released their views. In its own process the
 * collector's timing is the program's alone; inside the whole suite the FinalizationRegistry's
 * callbacks may wait on other tests' garbage. Prints one JSON line.
 */

import { Machine } from '../../../xen-emu/machine.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error('slab-reuse-probe: run with node --expose-gc');
  process.exit(2);
}
const m = new Machine({ maxPage: 4096 });
for (let i = 0; i < 512; i++) m.allocFrame(0);
const cycle = (): void => {
  for (let mfn = 0; mfn < 512; mfn++) m.bytes(mfn)[0] = 1;
  for (let mfn = 0; mfn < 512; mfn++) m.setStamp(mfn, 7);
};
// FinalizationRegistry callbacks run some time after a collection: wait until all 512 are back.
const settle = async (): Promise<number> => {
  const deadline = Date.now() + 10_000;
  do {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  } while (m.reusablePageSlots < 512 && Date.now() < deadline);
  return m.reusablePageSlots;
};
const released: number[] = [];
cycle();
released.push(await settle());
const hostBytesAfterFirst = m.hostBytes;
for (let r = 0; r < 4; r++) {
  cycle();
  released.push(await settle());
}
const hostBytesAfterLast = m.hostBytes;
let zeroFilled = 0;
for (let mfn = 0; mfn < 512; mfn++) {
  m.setStamp(mfn, 0);
  if (m.bytes(mfn).every((b) => b === 0)) zeroFilled++;
}
console.log(JSON.stringify({ released, hostBytesAfterFirst, hostBytesAfterLast, zeroFilled }));
