/** xen-pv-abi-kit: the library entry point. Layers are exported as they land. */
export * from './abi/index.js';
export * as xenEmu from './xen-emu/index.js';
