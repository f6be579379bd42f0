/**
 * Checks of guest kernels against the ABI: `check-headers` (C headers through a real compiler) and
 * `check-kernel` (BTF from a built kernel), with the BTF, ELF and kernel-image readers they use.
 */

export * from './errors.js';
export * from './elf.js';
export * from './btf.js';
export * from './decompress.js';
export * from './guest-names.js';
export * from './compare.js';
export * from './kernel.js';
export * from './headers.js';
export * from './report.js';
