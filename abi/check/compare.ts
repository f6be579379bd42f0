/**
 * Holds one struct as a guest lays it out (from a kernel's BTF or from headers through a compiler)
 * against the kit's declaration, and classifies it: `identical`, `compatible` (same bytes; renamed
 * fields, other integer signedness, extra fields in padding or other alignment are listed),
 * `incompatible` (a field moved, resized, missing or of another kind; the struct resized or of the
 * other kind — with both offsets and sizes), or `not present`.
 *
 * Both sides are flattened into nodes with dotted paths: members of anonymous aggregates, of named
 * structs (`arch.p2m_generation`) and of the first element of arrays of structs
 * (`vcpu_info[0].time.version`), so a rename deep inside is found and reported where it is.
 * Members a kit field declares as its aliases (`eax`, `_eax` beside `cpu_user_regs.rax` in one
 * anonymous union) are accounted for by that field, not listed as extra.
 * Failures use the kit's one shape: `Fail: <context>, expected X, got Y`; expected is Xen's layout.
 */

import { primSize } from '../ctype.js';
import type { GuestAbi, GuestAbiName } from '../guest-abi.js';
import type { FieldLayout, StructInfo } from '../struct.js';
import { hex } from './errors.js';
import { GUEST_NAMES, guestNamesOf, type GuestNames } from './guest-names.js';

export type KitKind = 'int' | 'handle' | 'array' | 'struct' | 'union';

/** One field of the kit's layout, with every path a guest may use for it. */
export interface KitNode {
  readonly path: string;
  /** Paths to look for, the kit's own first, then guests' names (`wc.version` for `wc_version`). */
  readonly candidates: readonly { readonly path: string; readonly guest?: string }[];
  /** The kit path of the enclosing aggregate field; undefined at the top level. */
  readonly parent?: string;
  readonly offset: number;
  readonly size: number;
  readonly kind: KitKind;
  readonly type: string;
  readonly signed?: boolean;
  readonly elemSize?: number;
  readonly elemKind?: 'int' | 'struct' | 'union';
  readonly hasChildren: boolean;
  /** Names the headers give (part of) the same bytes in an anonymous union: not extra fields. */
  readonly aliases?: readonly string[];
}

/** What a guest's layout says about one member. `ptr-or-array` is all a compiler probe can tell apart. */
export type ObservedKind = 'int' | 'enum' | 'ptr' | 'array' | 'ptr-or-array' | 'struct' | 'union' | 'float' | 'bitfield' | 'void' | 'other';

export interface ObservedNode {
  readonly path: string;
  /** Path of the enclosing member; '' at the top level. */
  readonly parent: string;
  readonly offset: number;
  readonly size: number;
  readonly kind: ObservedKind;
  /** The guest's C spelling, for messages. */
  readonly type: string;
  readonly signed?: boolean;
  readonly elemSize?: number;
  readonly elemKind?: ObservedKind;
  /** A struct or union whose only member is one pointer or integer filling it (a guest handle). */
  readonly wrapsScalar?: boolean;
}

export interface ObservedStruct {
  /** `struct pvclock_vcpu_time_info` */
  readonly foundAs: string;
  /** The struct name it was found by, and which guest uses that name when it is not Xen's. */
  readonly foundName: string;
  readonly foundGuest?: string;
  readonly kind: 'struct' | 'union';
  readonly size: number;
  readonly align?: number;
  readonly nodes: ReadonlyMap<string, ObservedNode>;
  /** Every member is listed (BTF), so fields under unknown names and extra fields can be found. */
  readonly enumerated: boolean;
  readonly notes: readonly string[];
}

export type StructStatus = 'identical' | 'compatible' | 'incompatible' | 'not present';
export const STRUCT_STATUSES: readonly StructStatus[] = Object.freeze(['identical', 'compatible', 'incompatible', 'not present']);

export type FieldProblemKind = 'moved' | 'resized' | 'missing' | 'other kind';

export interface FieldPlace {
  readonly path: string;
  readonly offset: number;
  readonly size: number;
  readonly type: string;
}

export interface FieldProblem {
  /** The kit's path. */
  readonly field: string;
  readonly problem: FieldProblemKind;
  readonly expected: FieldPlace;
  /** The guest's field; undefined when missing. */
  readonly got?: FieldPlace;
  readonly message: string;
}

export interface FieldRename {
  readonly from: string;
  readonly to: string;
  /** The guest known to use this name; undefined when the rename was found by offset and size. */
  readonly guest?: string;
}

export interface StructReport {
  readonly name: string;
  readonly kind: 'struct' | 'union';
  readonly abi: GuestAbiName;
  readonly status: StructStatus;
  /** How the guest spells the struct, when present. */
  readonly foundAs?: string;
  readonly size: { readonly expected: number; readonly got?: number };
  readonly renames: readonly FieldRename[];
  /** Integer fields of other signedness, and other alignment: same bytes, noted. */
  readonly retyped: readonly { readonly field: string; readonly expected: string; readonly got: string }[];
  /** Guest fields the kit does not have, outside every kit field's bytes or beside them in a union. */
  readonly extra: readonly FieldPlace[];
  readonly problems: readonly FieldProblem[];
  /** Struct-level failures (size, struct vs union), in the failure shape. */
  readonly failures: readonly string[];
  readonly notes: readonly string[];
}

interface Candidate {
  readonly path: string;
  readonly guest?: string;
}

function dedupe(cands: Candidate[]): Candidate[] {
  const seen = new Set<string>();
  return cands.filter((c) => (seen.has(c.path) ? false : (seen.add(c.path), true)));
}

/** The kit's layout of `def` flattened into nodes, each with the paths guests use for it. */
export function kitNodes(def: StructInfo, abi: GuestAbi, table: readonly GuestNames[] = GUEST_NAMES): KitNode[] {
  const out: KitNode[] = [];
  const walk = (
    fields: readonly FieldLayout[],
    owner: StructInfo,
    rootCands: Candidate[],
    parentCands: Candidate[],
    parent: string | undefined,
    base: number,
  ): void => {
    const aliases = guestNamesOf(owner.name, table)?.fields ?? {};
    for (const f of fields) {
      const own = parentCands.map((p) => ({ path: p.path + f.name, ...(p.guest ? { guest: p.guest } : {}) }));
      const alias = (aliases[f.path] ?? []).flatMap((a) => rootCands.map((r) => ({ path: r.path + a.path, guest: a.guest })));
      const candidates = dedupe([...own, ...alias]);
      const path = own[0]!.path;
      const offset = base + f.offset;
      const common = {
        path,
        candidates,
        ...(parent === undefined ? {} : { parent }),
        offset,
        size: f.size,
        type: f.cType,
        ...(f.aliases ? { aliases: f.aliases } : {}),
      };
      const type = f.type;
      switch (type.kind) {
        case 'prim':
          out.push({ ...common, kind: type.c.startsWith('XEN_GUEST_HANDLE') ? 'handle' : 'int', signed: type.signed, hasChildren: false });
          break;
        case 'array': {
          const elem = type.of;
          if (elem.kind === 'struct') {
            out.push({ ...common, kind: 'array', elemSize: elem.def.sizeOf(abi), elemKind: elem.def.kind, hasChildren: true });
            const sub = candidates.map((c) => ({ ...c, path: `${c.path}[0].` }));
            walk(elem.def.layout(abi).fields, elem.def, sub, sub, path, offset);
          } else if (elem.kind === 'prim') {
            out.push({ ...common, kind: 'array', elemSize: primSize(elem, abi), elemKind: 'int', hasChildren: false });
          } else {
            out.push({ ...common, kind: 'array', elemSize: f.size / Math.max(1, type.length), hasChildren: false });
          }
          break;
        }
        case 'struct': {
          out.push({ ...common, kind: type.def.kind, hasChildren: true });
          const sub = candidates.map((c) => ({ ...c, path: `${c.path}.` }));
          walk(type.def.layout(abi).fields, type.def, sub, sub, path, offset);
          break;
        }
        case 'inline':
          out.push({ ...common, kind: type.union ? 'union' : 'struct', hasChildren: true });
          walk(
            f.members ?? [],
            owner,
            rootCands,
            candidates.map((c) => ({ ...c, path: `${c.path}.` })),
            path,
            base,
          );
          break;
      }
    }
  };
  const root = [{ path: '' }];
  walk(def.layout(abi).fields, def, root, root, undefined, 0);
  return out;
}

const KIND_WORDS: Readonly<Record<ObservedKind | KitKind, string>> = {
  int: 'an integer',
  enum: 'an enum',
  ptr: 'a pointer',
  array: 'an array',
  'ptr-or-array': 'a pointer or array',
  struct: 'a struct',
  union: 'a union',
  float: 'a floating-point number',
  bitfield: 'a bitfield',
  void: 'void',
  other: 'another kind of type',
  handle: 'a guest handle',
};

/** Whether the guest's member is the same kind of thing as the kit's field (sizes aside). */
function sameKind(kit: KitNode, obs: ObservedNode): boolean {
  switch (kit.kind) {
    case 'int':
      return obs.kind === 'int' || obs.kind === 'enum';
    case 'handle':
      return (
        obs.kind === 'int' ||
        obs.kind === 'enum' ||
        obs.kind === 'ptr' ||
        obs.kind === 'ptr-or-array' ||
        ((obs.kind === 'struct' || obs.kind === 'union') && obs.wrapsScalar !== false)
      );
    case 'array': {
      if (obs.kind !== 'array' && obs.kind !== 'ptr-or-array') return false;
      if (obs.elemSize !== undefined && kit.elemSize !== undefined && obs.elemSize !== kit.elemSize) return false;
      if (obs.elemKind === undefined || kit.elemKind === undefined) return true;
      return kit.elemKind === 'int' ? obs.elemKind === 'int' || obs.elemKind === 'enum' : obs.elemKind === kit.elemKind;
    }
    case 'struct':
    case 'union':
      return obs.kind === kit.kind;
  }
}

function describe(size: number, offset: number): string {
  return `${size} byte${size === 1 ? '' : 's'} at ${hex(offset)}`;
}

/** Classifies one struct; `observed` undefined means the guest does not have it. */
export function compareStruct(
  def: StructInfo,
  abi: GuestAbi,
  observed: ObservedStruct | undefined,
  options: { readonly notes?: readonly string[]; readonly table?: readonly GuestNames[] } = {},
): StructReport {
  const layout = def.layout(abi);
  const base = { name: def.name, kind: def.kind, abi: abi.name };
  if (!observed) {
    return {
      ...base,
      status: 'not present',
      size: { expected: layout.size },
      renames: [],
      retyped: [],
      extra: [],
      problems: [],
      failures: [],
      notes: [...(options.notes ?? [])],
    };
  }
  const ctx = `(${abi.name})`;
  const failures: string[] = [];
  if (observed.kind !== def.kind) failures.push(`Fail: kind of ${def.name} ${ctx}, expected ${def.kind}, got ${observed.kind}`);
  if (observed.size !== layout.size) failures.push(`Fail: sizeof(${def.name}) ${ctx}, expected ${layout.size}, got ${observed.size}`);

  const nodes = kitNodes(def, abi, options.table ?? GUEST_NAMES);
  const claimed = new Map<string, ObservedNode>(); // kit path -> observed node
  const taken = new Set<string>(); // observed paths matched
  const via = new Map<string, Candidate>();
  // Pass 1: by name (the kit's, then the names guests use).
  for (const k of nodes) {
    for (const c of k.candidates) {
      const o = observed.nodes.get(c.path);
      if (o && !taken.has(o.path)) {
        claimed.set(k.path, o);
        taken.add(o.path);
        via.set(k.path, c);
        break;
      }
    }
  }
  // Pass 2: a field under a name no table knows is the member with the same bytes and kind.
  if (observed.enumerated) {
    const byOffset = new Map<number, ObservedNode[]>();
    for (const o of observed.nodes.values()) {
      const list = byOffset.get(o.offset);
      if (list) list.push(o);
      else byOffset.set(o.offset, [o]);
    }
    for (const k of nodes) {
      if (claimed.has(k.path)) continue;
      const parentPath = k.parent === undefined ? '' : claimed.get(k.parent)?.path;
      const fits = (byOffset.get(k.offset) ?? []).filter((o) => !taken.has(o.path) && o.size === k.size && sameKind(k, o));
      const pick = fits.find((o) => o.parent === parentPath) ?? fits[0];
      if (pick) {
        claimed.set(k.path, pick);
        taken.add(pick.path);
        via.set(k.path, { path: pick.path });
      }
    }
  }

  const problems: FieldProblem[] = [];
  const renames: FieldRename[] = [];
  const retyped: { field: string; expected: string; got: string }[] = [];
  const byPath = new Map(nodes.map((k) => [k.path, k]));
  const brokenParents = new Map<string, 'missing' | 'other kind' | number>(); // number: the parent moved by that delta
  for (const k of nodes) {
    const o = claimed.get(k.path);
    const parentState = k.parent === undefined ? undefined : brokenParents.get(k.parent);
    const expected: FieldPlace = { path: k.path, offset: k.offset, size: k.size, type: k.type };
    if (parentState === 'missing' || parentState === 'other kind') {
      brokenParents.set(k.path, parentState);
      continue;
    }
    if (!o) {
      brokenParents.set(k.path, 'missing');
      problems.push({
        field: k.path,
        problem: 'missing',
        expected,
        message: `Fail: ${def.name}.${k.path} missing ${ctx}, expected ${k.type} (${describe(k.size, k.offset)}), got no such field`,
      });
      continue;
    }
    const got: FieldPlace = { path: o.path, offset: o.offset, size: o.size, type: o.type };
    const parent = k.parent === undefined ? undefined : byPath.get(k.parent);
    const parentObs = k.parent === undefined ? undefined : claimed.get(k.parent);
    const expectedFromParent = parent && parentObs ? parentObs.path + k.path.slice(parent.path.length) : k.path;
    if (o.path !== expectedFromParent) {
      const c = via.get(k.path);
      renames.push({ from: k.path, to: o.path, ...(c?.guest ? { guest: c.guest } : {}) });
    }
    const as = o.path === k.path ? '' : ` (as ${o.path})`;
    if (!sameKind(k, o)) {
      brokenParents.set(k.path, 'other kind');
      problems.push({
        field: k.path,
        problem: 'other kind',
        expected,
        got,
        message: `Fail: ${def.name}.${k.path}${as} of another kind ${ctx}, expected ${k.type}, ${KIND_WORDS[k.kind]} (${describe(k.size, k.offset)}), got ${o.type ? `${o.type}, ` : ''}${KIND_WORDS[o.kind]} (${describe(o.size, o.offset)})`,
      });
      continue;
    }
    const delta = o.offset - k.offset;
    const inherited = typeof parentState === 'number' && parentState === delta;
    if (delta !== 0) brokenParents.set(k.path, delta);
    if (delta !== 0 && !inherited) {
      problems.push({
        field: k.path,
        problem: 'moved',
        expected,
        got,
        message: `Fail: ${def.name}.${k.path}${as} moved ${ctx}, expected ${describe(k.size, k.offset)}, got ${describe(o.size, o.offset)}`,
      });
    } else if (o.size !== k.size) {
      problems.push({
        field: k.path,
        problem: 'resized',
        expected,
        got,
        message: `Fail: ${def.name}.${k.path}${as} resized ${ctx}, expected ${describe(k.size, k.offset)}, got ${describe(o.size, o.offset)}`,
      });
    }
    if (k.kind === 'int' && o.kind === 'int' && o.signed !== undefined && k.signed !== undefined && o.signed !== k.signed) {
      retyped.push({ field: k.path, expected: `${k.type} (${k.signed ? 'signed' : 'unsigned'})`, got: `${o.type} (${o.signed ? 'signed' : 'unsigned'})` });
    }
  }
  if (observed.align !== undefined && observed.align !== layout.align) {
    retyped.push({ field: '(struct)', expected: `aligned to ${layout.align}`, got: `aligned to ${observed.align}` });
  }

  const extra: FieldPlace[] = [];
  if (observed.enumerated) {
    // Guest members no kit field accounts for: not matched, not inside a matched scalar or array
    // (a handle's pointer), and with no matched member inside them. Only the outermost is listed.
    const leafLike = new Set<string>();
    for (const k of nodes) {
      const o = claimed.get(k.path);
      if (o && !k.hasChildren) leafLike.add(o.path);
    }
    // Aliases the kit declares for a matched field: same parent, bytes within the field's.
    const accounted = new Set(taken);
    for (const k of nodes) {
      const o = claimed.get(k.path);
      if (!o || !k.aliases) continue;
      const prefix = o.path.slice(0, o.path.lastIndexOf('.') + 1);
      for (const a of k.aliases) {
        const x = observed.nodes.get(prefix + a);
        if (x && !taken.has(x.path) && x.parent === o.parent && x.offset >= o.offset && x.offset + x.size <= o.offset + o.size) {
          accounted.add(x.path);
        }
      }
    }
    const hasTakenInside = new Set<string>();
    for (const path of accounted) {
      for (let p = observed.nodes.get(path)?.parent; p; p = observed.nodes.get(p)?.parent) hasTakenInside.add(p);
    }
    const reported = new Set<string>();
    for (const o of observed.nodes.values()) {
      if (accounted.has(o.path) || hasTakenInside.has(o.path)) continue;
      let skip = false;
      for (let p = o.parent; p; p = observed.nodes.get(p)?.parent ?? '') {
        if (leafLike.has(p) || reported.has(p)) {
          skip = true;
          break;
        }
      }
      if (skip) continue;
      reported.add(o.path);
      extra.push({ path: o.path, offset: o.offset, size: o.size, type: o.type });
    }
  }

  const renamedStruct = observed.foundName !== def.name;
  const status: StructStatus =
    failures.length > 0 || problems.length > 0
      ? 'incompatible'
      : renamedStruct || renames.length > 0 || retyped.length > 0 || extra.length > 0
        ? 'compatible'
        : 'identical';
  return {
    ...base,
    status,
    foundAs: observed.foundAs,
    size: { expected: layout.size, got: observed.size },
    renames: renamedStruct
      ? [{ from: `${def.kind} ${def.name}`, to: observed.foundAs, ...(observed.foundGuest ? { guest: observed.foundGuest } : {}) }, ...renames]
      : renames,
    retyped,
    extra,
    problems,
    failures,
    notes: [...(options.notes ?? []), ...observed.notes],
  };
}

/** How many structs have each status. */
export function summarize(reports: readonly StructReport[]): Record<StructStatus, number> {
  const out: Record<StructStatus, number> = { identical: 0, compatible: 0, incompatible: 0, 'not present': 0 };
  for (const r of reports) out[r.status]++;
  return out;
}

const RANK: Readonly<Record<StructStatus, number>> = { identical: 0, compatible: 1, incompatible: 2, 'not present': 3 };

/** The better of two reports for the same struct (several guest types may carry its name). */
export function betterReport(a: StructReport, b: StructReport): StructReport {
  return RANK[b.status] < RANK[a.status] ? b : a;
}
