/**
 * Compressed kernel images: an x86 bzImage (the boot sector and setup header, then a compressed
 * payload that unpacks to the kernel's ELF image, `.BTF` included) or a whole file compressed with
 * gzip, xz, lz4 or zstd (`vmlinux.gz`, some distributions' `vmlinuz`). gzip is unpacked with
 * node:zlib; xz, lz4 and zstd with the system tools when they are installed. Anything else is
 * refused with one line that says how to get the uncompressed `vmlinux`.
 */

import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { hex, KernelImageError } from './errors.js';

/** An unpacked image larger than this is refused (a real vmlinux is a few hundred MiB at most). */
export const MAX_UNPACKED_BYTES = 1 << 30;

export type Compression = 'gzip' | 'xz' | 'lz4' | 'zstd' | 'bzip2' | 'lzma' | 'lzo';

const MAGICS: readonly { readonly format: Compression; readonly magic: readonly number[] }[] = [
  { format: 'gzip', magic: [0x1f, 0x8b] },
  { format: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { format: 'lz4', magic: [0x02, 0x21, 0x4c, 0x18] }, // legacy frame, as the kernel writes it
  { format: 'lz4', magic: [0x04, 0x22, 0x4d, 0x18] },
  { format: 'bzip2', magic: [0x42, 0x5a, 0x68] },
  { format: 'lzo', magic: [0x89, 0x4c, 0x5a, 0x4f] },
  { format: 'lzma', magic: [0x5d, 0x00, 0x00] },
];

/** The system tool that unpacks each format, and the Debian package that has it. */
const TOOLS: Readonly<Partial<Record<Compression, { readonly command: string; readonly args: readonly string[]; readonly pkg: string }>>> = {
  xz: { command: 'xz', args: ['-dc', '--single-stream'], pkg: 'xz-utils' },
  lz4: { command: 'lz4', args: ['-dc'], pkg: 'lz4' },
  zstd: { command: 'zstd', args: ['-dc'], pkg: 'zstd' },
};

export const HOW_TO_GET_VMLINUX =
  'give the uncompressed vmlinux instead: extract it with the kernel\'s scripts/extract-vmlinux, ' +
  'install the distribution\'s debug package (Debian: linux-image-<version>-dbg, Fedora: kernel-debuginfo), ' +
  'or use /sys/kernel/btf/vmlinux of the running kernel';

export function compressionOf(bytes: Uint8Array, at = 0): Compression | undefined {
  return MAGICS.find((m) => m.magic.every((b, i) => bytes[at + i] === b))?.format;
}

/** An x86 boot image: boot sector signature 0xAA55 at 0x1fe and the setup header magic `HdrS` at 0x202. */
export function isBzImage(bytes: Uint8Array): boolean {
  return bytes.length >= 0x250 && bytes[0x1fe] === 0x55 && bytes[0x1ff] === 0xaa && Buffer.from(bytes.buffer, bytes.byteOffset + 0x202, 4).toString('latin1') === 'HdrS';
}

/** Paths or names of the unpacking tools, for tests; default the names on PATH. */
export interface UnpackTools {
  readonly xz?: string;
  readonly lz4?: string;
  readonly zstd?: string;
}

export interface Unpacked {
  readonly bytes: Uint8Array;
  /** What was peeled off, outermost first: `bzImage`, `gzip`, … */
  readonly steps: readonly string[];
}

function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** The compressed payload of a bzImage and its file offset (boot protocol 2.08 or later). */
export function bzImagePayload(bytes: Uint8Array): { payload: Uint8Array; offset: number } {
  const version = u16(bytes, 0x206);
  if (version < 0x208) {
    throw new KernelImageError(`bzImage boot protocol ${(version >> 8).toString()}.${(version & 0xff).toString().padStart(2, '0')} has no payload fields (2.08 or later needed); ${HOW_TO_GET_VMLINUX}`, 0x206);
  }
  const setupSects = bytes[0x1f1] || 4;
  const start = (setupSects + 1) * 512;
  const offset = start + u32(bytes, 0x248);
  const length = u32(bytes, 0x24c);
  if (length === 0 || offset + length > bytes.length) {
    throw new KernelImageError(`bzImage payload (${length} bytes at ${hex(offset)}) does not fit the file (${bytes.length} bytes)`, 0x248);
  }
  return { payload: bytes.subarray(offset, offset + length), offset };
}

function refuse(format: Compression, what: string, offset: number, reason: string): never {
  throw new KernelImageError(`${what} is ${format}-compressed and ${reason}; ${HOW_TO_GET_VMLINUX}`, offset);
}

function runTool(format: Compression, data: Uint8Array, what: string, offset: number, tools: UnpackTools): Uint8Array {
  const tool = TOOLS[format];
  if (!tool) return refuse(format, what, offset, `this kit does not unpack ${format}`);
  const command = tools[format as keyof UnpackTools] ?? tool.command;
  const attempt = (input: Uint8Array) =>
    spawnSync(command, [...tool.args], { input, maxBuffer: MAX_UNPACKED_BYTES, stdio: ['pipe', 'pipe', 'pipe'] });
  let r = attempt(data);
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    return refuse(format, what, offset, `'${command}' is not installed (Debian package ${tool.pkg})`);
  }
  // The kernel's build appends the uncompressed size (4 bytes) after the stream; some tools reject it.
  if ((r.error || r.status !== 0) && data.length > 4) r = attempt(data.subarray(0, data.length - 4));
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOBUFS') {
    throw new KernelImageError(`${what} unpacks to more than ${MAX_UNPACKED_BYTES} bytes`, offset);
  }
  if (r.error || r.status !== 0 || r.stdout.length === 0) {
    const line = r.stderr?.toString('utf8').split('\n').find((l) => l.trim() !== '')?.trim() ?? r.error?.message ?? `exit ${r.status}`;
    throw new KernelImageError(`${what} does not unpack with ${command}: ${line}`, offset);
  }
  return new Uint8Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.length);
}

function gunzip(data: Uint8Array, what: string, offset: number): Uint8Array {
  try {
    return gunzipSync(data, { maxOutputLength: MAX_UNPACKED_BYTES });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw new KernelImageError(`${what} unpacks to more than ${MAX_UNPACKED_BYTES} bytes`, offset);
    throw new KernelImageError(`${what} is not valid gzip: ${(err as Error).message}`, offset);
  }
}

function unpackStream(format: Compression, data: Uint8Array, what: string, offset: number, tools: UnpackTools): Uint8Array {
  return format === 'gzip' ? gunzip(data, what, offset) : runTool(format, data, what, offset, tools);
}

/**
 * Peels a bzImage and compression off `bytes` until something else is left (an ELF file, raw BTF,
 * or anything the caller then rejects). At most two layers: a bzImage and its payload.
 */
export function unpackKernelImage(bytes: Uint8Array, tools: UnpackTools = {}): Unpacked {
  const steps: string[] = [];
  let current = bytes;
  for (let depth = 0; depth < 3; depth++) {
    if (isBzImage(current)) {
      if (depth > 0) throw new KernelImageError('a bzImage inside a compressed file is not supported', 0);
      const { payload, offset } = bzImagePayload(current);
      const format = compressionOf(payload);
      if (!format) {
        const head = Buffer.from(payload.subarray(0, 4)).toString('hex');
        throw new KernelImageError(`bzImage payload has an unknown compression (starts with ${head}); ${HOW_TO_GET_VMLINUX}`, offset);
      }
      steps.push('bzImage', format);
      current = unpackStream(format, payload, `bzImage payload`, offset, tools);
      continue;
    }
    const format = compressionOf(current);
    if (!format) return { bytes: current, steps };
    steps.push(format);
    current = unpackStream(format, current, depth === 0 ? 'the file' : 'the unpacked data', 0, tools);
  }
  return { bytes: current, steps };
}
