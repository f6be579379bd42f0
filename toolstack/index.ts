/**
 * Reference toolstacks (design: the privileged side that saves and restores a domain) and the libxc
 * migration stream they speak, and libxc's mapping of a guest's p2m (`mapGuestP2m`). The
 * save/restore strategies build on these.
 */
export * from './stream/index.js';
export * from './p2m-map.js';
