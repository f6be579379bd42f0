/** The emulated Xen: machine memory, domains, m2p, logdirty, hypercalls, the toolstack's interface. */
export * from './events.js';
export * from './machine.js';
export * from './logdirty.js';
export * from './grant-table.js';
export * from './domain.js';
export * from './xen.js';
export * from './privileged.js';
export * from './builder.js';
export * from './rng.js';
export * from './scheduler.js';
