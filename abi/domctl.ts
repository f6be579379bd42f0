/**
 * Mirrors the parts of `domctl.h` (a tools-only header, `__XEN_TOOLS__`) that the toolstack's view
 * of a domain uses: page-frame type info (`XEN_DOMCTL_getpageframeinfo3`) and the shadow/log-dirty
 * operations live migration drives.
 */

import { constants } from './constants.js';

/** Page type of a frame, in bits 28–31 of a getpageframeinfo3 result. */
export const XEN_DOMCTL_PFINFO_LTAB_SHIFT = 28;
/** An ordinary page (no page-table type). */
export const XEN_DOMCTL_PFINFO_NOTAB = 0x0 << 28;
export const XEN_DOMCTL_PFINFO_L1TAB = 0x1 << 28;
export const XEN_DOMCTL_PFINFO_L2TAB = 0x2 << 28;
export const XEN_DOMCTL_PFINFO_L3TAB = 0x3 << 28;
export const XEN_DOMCTL_PFINFO_L4TAB = 0x4 << 28;
export const XEN_DOMCTL_PFINFO_LTABTYPE_MASK = 0x7 << 28;
/** The page-table type is pinned. Bit 31: kept as a positive number. */
export const XEN_DOMCTL_PFINFO_LPINTAB = 2 ** 31;
/** Not a page of this domain (invalid or not owned): saved as XTAB, carries no data. */
export const XEN_DOMCTL_PFINFO_XTAB = 0xf * 2 ** 28;
/** Allocate-only page: the destination allocates it, no data is sent. */
export const XEN_DOMCTL_PFINFO_XALLOC = 0xe * 2 ** 28;
export const XEN_DOMCTL_PFINFO_BROKEN = 0xd * 2 ** 28;
export const XEN_DOMCTL_PFINFO_LTAB_MASK = 0xf * 2 ** 28;

export const XEN_DOMCTL_SHADOW_OP_OFF = 0;
export const XEN_DOMCTL_SHADOW_OP_ENABLE = 32;
/** Return the log-dirty bitmap and clear it. */
export const XEN_DOMCTL_SHADOW_OP_CLEAN = 11;
/** Return the log-dirty bitmap without clearing it. */
export const XEN_DOMCTL_SHADOW_OP_PEEK = 12;
export const XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY = 2;

export const DOMCTL_CONSTANTS = constants(
  'domctl.h',
  {
    XEN_DOMCTL_PFINFO_LTAB_SHIFT,
    XEN_DOMCTL_PFINFO_NOTAB,
    XEN_DOMCTL_PFINFO_L1TAB,
    XEN_DOMCTL_PFINFO_L2TAB,
    XEN_DOMCTL_PFINFO_L3TAB,
    XEN_DOMCTL_PFINFO_L4TAB,
    XEN_DOMCTL_PFINFO_LTABTYPE_MASK,
    XEN_DOMCTL_PFINFO_LPINTAB,
    XEN_DOMCTL_PFINFO_XTAB,
    XEN_DOMCTL_PFINFO_XALLOC,
    XEN_DOMCTL_PFINFO_BROKEN,
    XEN_DOMCTL_PFINFO_LTAB_MASK,
    XEN_DOMCTL_SHADOW_OP_OFF,
    XEN_DOMCTL_SHADOW_OP_ENABLE,
    XEN_DOMCTL_SHADOW_OP_CLEAN,
    XEN_DOMCTL_SHADOW_OP_PEEK,
    XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
  },
  {},
  { defines: ['__XEN_TOOLS__'] },
);
