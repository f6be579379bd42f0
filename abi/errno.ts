/**
 * Mirrors `xen/include/public/errno.h`: the error numbers Xen uses. A failing hypercall returns
 * the negated value (`-EINVAL` is -22). The header spells each as `XEN_<NAME>` (an enum built by
 * its `XEN_ERRNO(name, value)` list); the kit uses the bare name, as guests' own errno headers do.
 * Values happen to match Linux's x86 errno numbers.
 *
 * Grant operations report per-element failures as GNTST_* codes (grant_table.ts), not as errnos.
 */

import { constants, type ConstantGroup } from './constants.js';

export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const ENOEXEC = 8;
export const EBADF = 9;
export const ECHILD = 10;
export const EAGAIN = 11;
/** Same value as EAGAIN. */
export const EWOULDBLOCK = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EXDEV = 18;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ENOSPC = 28;
export const EROFS = 30;
export const EMLINK = 31;
export const EDOM = 33;
export const ERANGE = 34;
export const EDEADLK = 35;
/** Same value as EDEADLK. */
export const EDEADLOCK = 35;
export const ENAMETOOLONG = 36;
export const ENOLCK = 37;
export const ENOSYS = 38;
export const ENOTEMPTY = 39;
export const ENODATA = 61;
export const ETIME = 62;
export const EBADMSG = 74;
export const EOVERFLOW = 75;
export const EILSEQ = 84;
export const ENOTSOCK = 88;
export const EMSGSIZE = 90;
export const EOPNOTSUPP = 95;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ENOBUFS = 105;
export const EISCONN = 106;
export const ENOTCONN = 107;
export const ETIMEDOUT = 110;
export const ECONNREFUSED = 111;

// Hypervisor-internal: errno.h declares these only when building Xen itself (`__XEN__`), and Xen
// never returns them to a guest (a restart becomes a hypercall continuation).
export const EINTR = 4;
export const ERESTART = 85;

/** `{ NAME: 'XEN_NAME' }` for each name: how errno.h spells the constant in C. */
function xenSpelling(values: Record<string, number>): Record<string, string> {
  return Object.fromEntries(Object.keys(values).map((name) => [name, `XEN_${name}`]));
}

function errnoGroup(values: Record<string, number>): ConstantGroup {
  return constants('errno.h', values, xenSpelling(values));
}

/**
 * Every errno a guest can see, in header order. Where two names share a value, the first one
 * listed (EAGAIN, EDEADLK) is the one `errnoName` reports.
 */
export const ERRNO_CONSTANTS = errnoGroup({
  EPERM,
  ENOENT,
  ESRCH,
  EIO,
  ENXIO,
  E2BIG,
  ENOEXEC,
  EBADF,
  ECHILD,
  EAGAIN,
  EWOULDBLOCK,
  ENOMEM,
  EACCES,
  EFAULT,
  EBUSY,
  EEXIST,
  EXDEV,
  ENODEV,
  ENOTDIR,
  EISDIR,
  EINVAL,
  ENFILE,
  EMFILE,
  ENOSPC,
  EROFS,
  EMLINK,
  EDOM,
  ERANGE,
  EDEADLK,
  EDEADLOCK,
  ENAMETOOLONG,
  ENOLCK,
  ENOSYS,
  ENOTEMPTY,
  ENODATA,
  ETIME,
  EBADMSG,
  EOVERFLOW,
  EILSEQ,
  ENOTSOCK,
  EMSGSIZE,
  EOPNOTSUPP,
  EADDRINUSE,
  EADDRNOTAVAIL,
  ENOBUFS,
  EISCONN,
  ENOTCONN,
  ETIMEDOUT,
  ECONNREFUSED,
});

/**
 * The two errnos errno.h declares only under `__XEN__`. A probe checks them in a translation unit
 * of its own that defines `__XEN__` and includes nothing but errno.h (xen.h does not build that way).
 */
export const ERRNO_XEN_INTERNAL_CONSTANTS = errnoGroup({ EINTR, ERESTART });

/**
 * The name of an errno, given as Xen returns it (`-22`) or positive (`22`): `'EINVAL'`. Shared
 * values give the primary name (`'EAGAIN'`, `'EDEADLK'`). Anything else gives `'errno <value>'`.
 */
export function errnoName(value: number): string {
  const magnitude = Math.abs(value);
  for (const group of [ERRNO_CONSTANTS, ERRNO_XEN_INTERNAL_CONSTANTS]) {
    const found = Object.entries(group.values).find(([, v]) => v === magnitude);
    if (found) return found[0];
  }
  return `errno ${value}`;
}
