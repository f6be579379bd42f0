/**
 * Mirrors `struct start_info` and the `SIF_*` flags of `xen/include/public/xen.h`.
 *
 * start_info is the page a PV guest finds at boot (x86: its VIRTUAL address in rsi/esi; vCPU 0's
 * `edx` in a saved image carries its frame). The domain builder (libxenguest for a domU, Xen for
 * dom0) fills it in; the first block is refilled on resume, the rest only on initial boot. It is
 * where the guest learns its initial p2m (`mfn_list`) and whether the toolstack understands the
 * virtual linear p2m (`SIF_VIRT_P2M_4TOOLS`).
 */

import {
  array,
  char,
  field,
  inlineStruct,
  inlineUnion,
  int8_t,
  uint32_t,
  unsigned_long,
  xen_pfn_t,
} from './ctype.js';
import { constants } from './constants.js';
import { AbiViewError } from './errors.js';
import type { GuestAbi, GuestAbiName } from './guest-abi.js';
import { defineStruct } from './struct.js';

/** Bytes in `start_info.cmd_line`, including the terminating NUL. */
export const MAX_GUEST_CMDLINE = 1024;

/** The domain is privileged. */
export const SIF_PRIVILEGED = 1 << 0;
/** The domain is the initial control domain (dom0). */
export const SIF_INITDOMAIN = 1 << 1;
/** `mod_start` points at a multiboot-style module package rather than one module. */
export const SIF_MULTIBOOT_MOD = 1 << 2;
/** `mod_start` is a PFN rather than a VIRTUAL address. */
export const SIF_MOD_START_PFN = 1 << 3;
/**
 * The toolstack understands the virtual linear p2m (`arch_shared_info.p2m_cr3`/`p2m_vaddr`), so the
 * guest need not build the 3-level tree. libxenguest sets it for every domU it builds (Xen 4.7+);
 * Xen's dom0 builder does not. Linux then publishes `pfn_to_mfn_frame_list_list = ~0`.
 */
export const SIF_VIRT_P2M_4TOOLS = 1 << 4;
/** Bits 15:8 are reserved for power-management options. */
export const SIF_PM_MASK = 0xff << 8;

export const START_INFO_CONSTANTS = constants('xen.h', {
  MAX_GUEST_CMDLINE,
  SIF_PRIVILEGED,
  SIF_INITDOMAIN,
  SIF_MULTIBOOT_MOD,
  SIF_MOD_START_PFN,
  SIF_VIRT_P2M_4TOOLS,
  SIF_PM_MASK,
});

/**
 * The `magic` string libxenguest's domain builder writes: its guest type, `xen-3.0-x86_64` or
 * `xen-3.0-x86_32p` (PAE). The header only fixes the shape `xen-<version>-<platform>`.
 */
export const START_INFO_MAGIC: Readonly<Record<GuestAbiName, string>> = Object.freeze({
  x86_32: 'xen-3.0-x86_32p',
  x86_64: 'xen-3.0-x86_64',
});

export const start_info = defineStruct({
  name: 'start_info',
  header: 'xen.h',
  doc:
    'Start-of-day information for a PV guest, one page written by the domain builder (Xen builds ' +
    'dom0\'s). Fields up to `console` are filled on initial boot and again on resume; the rest only ' +
    'on initial boot. 1168 bytes on x86_64, 1112 on x86_32. On restore the toolstack rewrites ' +
    '`store_mfn`, `console.domU.*`, `nr_pages`, `shared_info` and `flags` (libxc `process_start_info`).',
  fields: [
    field('magic', array(char, 32), 'NUL-terminated `xen-<version>-<platform>`, e.g. `xen-3.0-x86_64` or `xen-3.0-x86_32p`; lets the guest check it runs on the ABI it was built for. Written by the domain builder.'),
    field('nr_pages', unsigned_long, 'Number of pages allocated to the domain at build time; the initial p2m at `mfn_list` has this many entries (pfns 0..nr_pages-1). Written by the domain builder; libxc restore sets it to the highest pfn + 1.'),
    field('shared_info', unsigned_long, 'MACHINE address (not MFN) of the shared_info page, page-aligned. Written by the domain builder; restore sets it to the new domain\'s shared_info frame.'),
    field('flags', uint32_t, 'SIF_* flags: SIF_PRIVILEGED, SIF_INITDOMAIN, SIF_MULTIBOOT_MOD, SIF_MOD_START_PFN, SIF_VIRT_P2M_4TOOLS; bits 15:8 (SIF_PM_MASK) reserved for power management. Written by the domain builder; libxc restore sets it to 0, so a resumed guest no longer sees SIF_VIRT_P2M_4TOOLS.'),
    field('store_mfn', xen_pfn_t, 'MFN of the xenstore ring page shared with the toolstack. Written by the domain builder; rewritten on restore.'),
    field('store_evtchn', uint32_t, 'Event channel port bound to the xenstore ring. Written by the domain builder.'),
    field(
      'console',
      inlineUnion([
        field(
          'domU',
          inlineStruct([
            field('mfn', xen_pfn_t, 'MFN of the console ring page. Written by the domain builder; rewritten on restore.'),
            field('evtchn', uint32_t, 'Event channel port bound to the console ring. Written by the domain builder.'),
          ]),
          'Console of an unprivileged domain: a shared ring page and its event channel.',
        ),
        field(
          'dom0',
          inlineStruct([
            field('info_off', uint32_t, 'Byte offset, from the start of this start_info page, of the dom0 console info struct (dom0_vga_console_info). Written by Xen.'),
            field('info_size', uint32_t, 'Size in bytes of that console info struct. Written by Xen.'),
          ]),
          'Console of the initial domain: where Xen put the VGA/framebuffer description.',
        ),
      ]),
      'Console description; `domU` for ordinary guests, `dom0` when SIF_INITDOMAIN is set.',
    ),
    field('pt_base', unsigned_long, 'VIRTUAL address of the bootstrap top-level page table (L4 on x86_64, the PAE L3 on x86_32), which is also the initial cr3. Mapped read-only. Written by the domain builder, initial boot only.'),
    field('nr_pt_frames', unsigned_long, 'Number of frames the bootstrap page tables occupy. Written by the domain builder, initial boot only.'),
    field('mfn_list', unsigned_long, 'VIRTUAL address of the initial p2m: `nr_pages` guest words, entry i = MFN of pfn i. Inside the bootstrap region, unless the kernel asked for XEN_ELFNOTE_INIT_P2M (x86_64 only): then at that address, possibly mapped with large pages and by page-table frames outside the initial mapping. Written by the domain builder; Linux re-points it when it moves the p2m to its vmalloc area.'),
    field('mod_start', unsigned_long, 'VIRTUAL address of the pre-loaded module (initial ramdisk), or its PFN when SIF_MOD_START_PFN is set; 0 without a module. Written by the domain builder, initial boot only.'),
    field('mod_len', unsigned_long, 'Size of the pre-loaded module in bytes. Written by the domain builder, initial boot only.'),
    field('cmd_line', array(int8_t, MAX_GUEST_CMDLINE), 'The kernel command line, NUL-terminated (at most MAX_GUEST_CMDLINE - 1 bytes of text). Written by the domain builder, initial boot only.'),
    field('first_p2m_pfn', unsigned_long, 'First pfn of the frames holding the initial p2m when it was placed at an XEN_ELFNOTE_INIT_P2M address; the range also covers the page-table frames that map it. 0 otherwise. Written by the domain builder, initial boot only.'),
    field('nr_p2m_frames', unsigned_long, 'Number of pfns in that range (p2m frames plus the page tables mapping them); 0 when the p2m is in the bootstrap region. Written by the domain builder, initial boot only.'),
  ],
});

/** The bytes of a NUL-terminated C string in a fixed field of `size` bytes; too long a string throws. */
export function encodeCString(text: string, size: number, what = 'string'): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.includes(0)) throw new AbiViewError(`${what}: contains a NUL byte`);
  if (bytes.length > size - 1) {
    throw new AbiViewError(`${what}: ${bytes.length} bytes do not fit ${size} bytes with the terminating NUL`);
  }
  const out = Buffer.alloc(size);
  bytes.copy(out);
  return out;
}

/** The text of a NUL-terminated C string field (all of it when no NUL is present). */
export function decodeCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.buffer, bytes.byteOffset, end === -1 ? bytes.length : end).toString('utf8');
}

/** `start_info.cmd_line` contents for `text`: exactly MAX_GUEST_CMDLINE bytes, NUL-padded. */
export function encodeCmdLine(text: string): Buffer {
  return encodeCString(text, MAX_GUEST_CMDLINE, 'start_info.cmd_line');
}

/** `start_info.magic` contents as libxenguest writes them for this ABI: 32 bytes, NUL-padded. */
export function startInfoMagic(abi: GuestAbi): Buffer {
  return encodeCString(START_INFO_MAGIC[abi.name], 32, 'start_info.magic');
}
