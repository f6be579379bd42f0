/**
 * Page contents as the stream carries them (design decision 5, content stamps). A page is either
 * real bytes or a 32-bit content stamp that stands for the deterministic bytes xen-emu's
 * `fillFromStamp` derives from it; this is xen-emu's `FrameContent`, what `frameContent()` gives the
 * saver and `writeFrame()` takes on restore.
 *
 * Where each form travels:
 * - a byte stream (a file, `--stream`, anything verify-stream-v2 or another process reads) is a
 *   real libxc stream: the encoder materialises every stamp into its 4096 bytes;
 * - the in-process channel (save and restore in one process, the only way to move a guest of
 *   hundreds of GiB) hands the same records over with stamps left as stamps.
 */

import { PAGE_SIZE } from '../../abi/index.js';
import { fillFromStamp, type FrameContent } from '../../xen-emu/index.js';

export type PageContent = FrameContent;

/** Writes the page's 4096 bytes into `into` at `at` (materialising a stamp). */
export function materialiseInto(content: PageContent, into: Uint8Array, at: number): void {
  const page = into.subarray(at, at + PAGE_SIZE);
  if ('stamp' in content) {
    if (page.byteOffset % 4 === 0) fillFromStamp(page, content.stamp);
    else {
      // fillFromStamp fills 32-bit words; go through an aligned scratch page.
      const scratch = new Uint8Array(PAGE_SIZE);
      fillFromStamp(scratch, content.stamp);
      page.set(scratch);
    }
  } else {
    page.set(content.bytes);
  }
}

/** The page's 4096 bytes, materialising a stamp into a new buffer. */
export function materialise(content: PageContent): Uint8Array {
  if ('bytes' in content) return content.bytes;
  const page = new Uint8Array(PAGE_SIZE);
  fillFromStamp(page, content.stamp);
  return page;
}

/** A copy that no later change to the source memory can reach (stamps are values already). */
export function snapshot(content: PageContent): PageContent {
  return 'stamp' in content ? content : { bytes: content.bytes.slice() };
}

/** Whether two contents hold the same 4096 bytes (stamps compare by value without materialising). */
export function sameContent(a: PageContent, b: PageContent): boolean {
  if ('stamp' in a && 'stamp' in b) return a.stamp >>> 0 === b.stamp >>> 0;
  const x = materialise(a);
  const y = materialise(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
