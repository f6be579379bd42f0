/**
 * Typed errors for malformed input files (an ELF object, raw BTF, a compressed kernel image). Each
 * carries the file offset where the problem was found, so the one-line message can point at it.
 */

import { AbiError } from '../errors.js';

/** `0x1a2b` */
export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** A file the checks cannot use. `offset` is a byte offset in the file as given (undefined: the file as a whole). */
export class InputFileError extends AbiError {
  override name = 'InputFileError';
  constructor(
    readonly what: string,
    readonly offset: number | undefined,
  ) {
    super(offset === undefined ? what : `${what} (at file offset ${hex(offset)})`);
  }
}

/** Not ELF, or an ELF file whose headers or section table do not fit the file. */
export class ElfFormatError extends InputFileError {
  override name = 'ElfFormatError';
}

/** BTF that is truncated or corrupt: a bad header, a record past its section, an id out of range, a cycle. */
export class BtfFormatError extends InputFileError {
  override name = 'BtfFormatError';
}

/** A compressed kernel image that cannot be unpacked here; the message says how to get `vmlinux`. */
export class KernelImageError extends InputFileError {
  override name = 'KernelImageError';
}
