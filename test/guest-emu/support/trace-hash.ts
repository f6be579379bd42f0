/** A SHA-256 over the serialized Xen event stream: equal hashes mean byte-for-byte equal traces. */

import { createHash } from 'node:crypto';
import type { Xen } from '../../../xen-emu/xen.js';
import type { XenEvent } from '../../../xen-emu/events.js';

export function serializeEvent(e: XenEvent): string {
  return JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));
}

export interface TraceHasher {
  readonly events: () => number;
  digest(): string;
  stop(): void;
}

export function hashEvents(xen: Xen): TraceHasher {
  const hash = createHash('sha256');
  let n = 0;
  const stop = xen.events.subscribe((e) => {
    hash.update(serializeEvent(e));
    hash.update('\n');
    n++;
  });
  return { events: () => n, digest: () => hash.digest('hex'), stop };
}
