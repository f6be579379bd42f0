/**
 * Reference toolstacks (design: the privileged side that saves and restores a domain) and the libxc
 * migration stream they speak. The stream is here; the save/restore strategies build on it.
 */
export * from './stream/index.js';
