/**
 * Fixtures made in the tests, nothing downloaded: copies of the installed Xen public headers with
 * deliberate edits (the names Linux uses; a field moved, resized or removed), and small objects
 * built from them with `gcc -g -c` and given a .BTF section by `pahole -J`.
 */

import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestAbi } from '../../abi/guest-abi.js';
import { XEN_INTERFACE_VERSION } from '../../abi/probe.js';

export const XEN_HEADERS = '/usr/include/xen';

/** One textual edit of a header; `from` must occur (all occurrences are replaced). */
export interface HeaderEdit {
  readonly file: string;
  readonly from: string;
  readonly to: string;
}

export const VARIANTS = {
  /** Xen's headers as installed. */
  xen: [],
  /** The names Linux uses: pvclock_vcpu_time_info with `pad`, shared_info.wc, address_bits. */
  'linux-names': [
    { file: 'xen.h', from: 'struct vcpu_time_info', to: 'struct pvclock_vcpu_time_info' },
    { file: 'xen.h', from: 'uint8_t  pad1[2];', to: 'uint8_t  pad[2];' },
    {
      file: 'xen.h',
      from: '    uint32_t wc_version;      /* Version counter: see vcpu_time_info_t. */\n    uint32_t wc_sec;\n    uint32_t wc_nsec;\n',
      to: '    struct pvclock_wall_clock { uint32_t version; uint32_t sec; uint32_t nsec; } wc;\n',
    },
    { file: 'memory.h', from: '    unsigned int   mem_flags;\n', to: '    unsigned int   address_bits;\n' },
  ],
  /** A rename no table knows: found by its bytes, still compatible. */
  'unknown-rename': [{ file: 'memory.h', from: '    unsigned int   mem_flags;\n', to: '    unsigned int   xenmem_flags;\n' }],
  /** p2m_cr3 and p2m_vaddr swapped. */
  moved: [
    {
      file: 'arch-x86/xen.h',
      from: '    unsigned long p2m_cr3;         /* cr3 value of the p2m address space */\n    unsigned long p2m_vaddr;       /* virtual address of the p2m list */\n',
      to: '    unsigned long p2m_vaddr;\n    unsigned long p2m_cr3;\n',
    },
  ],
  /** p2m_generation shrunk to 32 bits (the same on x86_32, where unsigned long is 32 bits). */
  'p2m-generation-32': [{ file: 'arch-x86/xen.h', from: 'unsigned long p2m_generation;', to: 'uint32_t p2m_generation;' }],
  /** nmi_reason removed. */
  removed: [{ file: 'arch-x86/xen.h', from: '    unsigned long nmi_reason;\n', to: '' }],
  /** grant_entry_v1.frame as an array of two 16-bit halves: same bytes, another kind. */
  'other-kind': [{ file: 'grant_table.h', from: '    uint32_t frame;\n};\ntypedef struct grant_entry_v1 grant_entry_v1_t;', to: '    uint16_t frame[2];\n};\ntypedef struct grant_entry_v1 grant_entry_v1_t;' }],
} as const satisfies Record<string, readonly HeaderEdit[]>;

export type VariantName = keyof typeof VARIANTS;

/** Copies Xen's headers to `<dir>/xen` with the variant's edits; returns the include directory. */
export function makeHeaderVariant(dir: string, variant: VariantName): string {
  const include = join(dir, `include-${variant}`);
  mkdirSync(include, { recursive: true });
  cpSync(XEN_HEADERS, join(include, 'xen'), { recursive: true });
  for (const edit of VARIANTS[variant] as readonly HeaderEdit[]) {
    const path = join(include, 'xen', edit.file);
    const text = readFileSync(path, 'utf8');
    if (!text.includes(edit.from)) throw new Error(`fixture edit ${variant}: ${edit.file} no longer contains ${JSON.stringify(edit.from)}`);
    writeFileSync(path, text.split(edit.from).join(edit.to));
  }
  return include;
}

export const FIXTURE_SOURCE = '#include <stdint.h>\n#include <xen/xen.h>\n#include <xen/memory.h>\n#include <xen/grant_table.h>\n';

function run(command: string, args: string[]): void {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${command}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
}

/** gcc -g -c of a file including the headers of `include` (every type kept), then pahole -J. */
export function buildBtfObject(dir: string, include: string, abi: GuestAbi, name: string): string {
  const src = join(dir, `${name}.c`);
  const obj = join(dir, `${name}-${abi.name}.o`);
  writeFileSync(src, FIXTURE_SOURCE);
  run(process.env.CC ?? 'gcc', [
    abi.gccFlag,
    '-g',
    '-c',
    '-fno-eliminate-unused-debug-types',
    `-D__XEN_INTERFACE_VERSION__=${XEN_INTERFACE_VERSION}`,
    `-I${include}`,
    src,
    '-o',
    obj,
  ]);
  run('pahole', ['-J', obj]);
  return obj;
}
