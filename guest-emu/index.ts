/** The emulated PV guest kernel: p2m tree and linear list, balloon, exchange, grants, growth, faulty variants, workloads. */
export * from './errors.js';
export * from './steps.js';
export * from './variants.js';
export * from './page-state.js';
export * from './hypercalls.js';
export * from './kernel-mm.js';
export * from './p2m-list.js';
export * from './p2m-tree.js';
export * from './grants.js';
export * from './balloon.js';
export * from './exchange.js';
export * from './data-writes.js';
export * from './guest.js';
export * from './workload.js';
