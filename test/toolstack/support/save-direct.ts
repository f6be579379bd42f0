/**
 * A save of a quiet emulated guest straight into a `RecordCollector` (no scheduler: nothing runs
 * meanwhile), and a restore of any record list into a fresh domain on another Xen: for restore
 * unit tests that replay a real stream, as is or with records changed, dropped or added.
 */

import type { GuestAbi } from '../../../abi/index.js';
import { buildDomain } from '../../../xen-emu/builder.js';
import { PrivilegedInterface } from '../../../xen-emu/privileged.js';
import { Xen } from '../../../xen-emu/xen.js';
import { PvGuest } from '../../../guest-emu/guest.js';
import { parseGuestVariant, startInfoFlagsFor } from '../../../guest-emu/variants.js';
import { Restorer } from '../../../toolstack/restore.js';
import { Saver, type SaveOptions, type SaveReport } from '../../../toolstack/save.js';
import { RecordCollector } from '../../../toolstack/stream/sinks.js';
import type { StreamRecord } from '../../../toolstack/stream/records.js';
import { StreamWriter } from '../../../toolstack/stream/writer.js';
import { finish } from '../../guest-emu/support/world.js';

export interface Source {
  readonly xen: Xen;
  readonly tools: PrivilegedInterface;
  readonly guest: PvGuest;
  readonly domid: number;
  readonly maxPages: number;
  readonly machinePages: number;
}

export function bootSource(abi: GuestAbi, guest: string, memoryPages = 2048): Source {
  const variant = parseGuestVariant(guest);
  const maxPages = memoryPages + 1024;
  const machinePages = maxPages * 2 + (1 << 15);
  const xen = new Xen({ maxPage: machinePages });
  const built = buildDomain(xen, { abi, memoryPages, maxPages, flags: startInfoFlagsFor(variant.personality) });
  const g = PvGuest.start(built, xen, { variant });
  return { xen, tools: new PrivilegedInterface(xen), guest: g, domid: g.domid, maxPages, machinePages };
}

export interface Saved {
  readonly report: SaveReport;
  readonly collector: RecordCollector;
  readonly records: readonly Entry[];
}

export interface Entry {
  readonly record: StreamRecord;
  readonly offset: number;
}

/** Saves `src` (quiet: the guest does nothing but suspend, and resume between checkpoints). */
export function saveQuiet(src: Source, options: Partial<SaveOptions> = {}): Saved {
  const collector = new RecordCollector();
  const checkpoints = options.checkpoints ?? 0;
  const writer = new StreamWriter(collector, { streamType: checkpoints > 0 ? 'checkpointed' : 'plain', maxVcpus: 1 });
  const g = src.guest;
  const saver = new Saver(
    src.tools,
    src.domid,
    writer,
    {
      *suspend() {
        yield* g.suspend();
      },
      *resumeBetweenCheckpoints() {
        yield* g.resume({ cancelled: true });
      },
    },
    { strategy: 'deep-tracking', ...options },
  );
  const report = finish(saver.run());
  return { report, collector, records: collector.records };
}

export interface Destination {
  readonly xen: Xen;
  readonly tools: PrivilegedInterface;
  readonly domid: number;
  readonly restorer: Restorer;
  readonly checkpointsSeen: number[];
}

/** A fresh domain on a new Xen, and a Restorer for it, fed the headers of `saved`. */
export function destination(src: Source, saved: Saved): Destination {
  const xen = new Xen({ maxPage: src.machinePages });
  const tools = new PrivilegedInterface(xen);
  const domid = tools.createDomain(src.guest.abi, src.maxPages).domid;
  const checkpointsSeen: number[] = [];
  const restorer = new Restorer(tools, domid, (n) => checkpointsSeen.push(n));
  restorer.headers(saved.collector.image!, saved.collector.domain!);
  return { xen, tools, domid, restorer, checkpointsSeen };
}

/** Feeds `records` to the destination's restorer. */
export function feed(dst: Destination, records: readonly Entry[]): void {
  for (const { record, offset } of records) dst.restorer.record(record, offset);
}
