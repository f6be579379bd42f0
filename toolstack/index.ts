/** Reference save/restore toolstacks for x86 PV guests, and the libxc migration stream. */
export * from './stream/index.js';
export * from './p2m-map.js';
export * from './save.js';
export * from './restore.js';
export * from './verify.js';
export * from './vcpu-context.js';
