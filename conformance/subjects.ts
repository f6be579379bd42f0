/**
 * Pluggable subjects (docs/conformance-interfaces.md, contract version 1): a user's guest or
 * toolstack module, loaded by path, and the built-in names. A module's default export (or its
 * `guest` / `toolstack` export) is the subject object; the kit hands `create` / `createSaver` the
 * kit's own classes (`kit`), so a module needs no import of the kit and no build step.
 */

import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BuiltDomain } from '../xen-emu/builder.js';
import type { PrivilegedInterface } from '../xen-emu/privileged.js';
import type { Xen } from '../xen-emu/xen.js';
import { PvGuest, type GuestOptions } from '../guest-emu/guest.js';
import { GUEST_VARIANT_NAMES, PERSONALITIES, type Personality } from '../guest-emu/variants.js';
import { Saver, STRATEGIES, type SaveCallbacks, type SaveOptions } from '../toolstack/save.js';
import type { StreamWriter } from '../toolstack/stream/writer.js';
import type { SaveRun } from './migration.js';

export const CONTRACT_VERSION = 1;

/** What `create` / `createSaver` receive as their last argument. */
export interface Kit {
  readonly contract: number;
  readonly PvGuest: typeof PvGuest;
  readonly Saver: typeof Saver;
}

export const KIT: Kit = Object.freeze({ contract: CONTRACT_VERSION, PvGuest, Saver });

export interface GuestSubject {
  readonly contract: 1;
  readonly name: string;
  /** Which p2m structures it keeps; sets start_info's flags (SIF_VIRT_P2M_4TOOLS for `linear`). */
  readonly personality: Personality;
  /** Builds the (unbooted) guest; default `new kit.PvGuest(built, xen, options)`. */
  create?(built: BuiltDomain, xen: Xen, options: GuestOptions, kit: Kit): PvGuest;
}

export interface ToolstackSubject {
  readonly contract: 1;
  readonly name: string;
  /** Builds the save: `run()` yields scheduler steps and returns a SaveReport; `progress` is live. */
  createSaver(tools: PrivilegedInterface, domid: number, writer: StreamWriter, callbacks: SaveCallbacks, options: SaveOptions, kit: Kit): SaveRun;
}

/** A module that does not meet the contract: one line, exit 2. */
export class SubjectError extends Error {
  override name = 'SubjectError';
}

/** Whether `--guest` / `--toolstack` names a module file rather than a built-in. */
export function isModulePath(name: string): boolean {
  return name.startsWith('.') || isAbsolute(name) || /\.(c|m)?(j|t)s$/.test(name);
}

export function absoluteModulePath(name: string, cwd = process.cwd()): string {
  return isAbsolute(name) ? name : resolve(cwd, name);
}

async function loadExport(path: string, named: string): Promise<Record<string, unknown>> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    throw new SubjectError(`cannot load ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const subject = (mod[named] ?? mod.default) as Record<string, unknown> | undefined;
  if (!subject || typeof subject !== 'object') throw new SubjectError(`${path} exports no ${named} object (export default { contract: 1, ... })`);
  if (subject.contract !== CONTRACT_VERSION) throw new SubjectError(`${path}: contract ${String(subject.contract)}, this kit implements contract ${CONTRACT_VERSION}`);
  if (typeof subject.name !== 'string' || subject.name === '') throw new SubjectError(`${path}: name must be a non-empty string`);
  return subject;
}

export async function loadGuestSubject(path: string): Promise<GuestSubject> {
  const s = await loadExport(path, 'guest');
  if (!(PERSONALITIES as readonly unknown[]).includes(s.personality)) throw new SubjectError(`${path}: personality ${String(s.personality)}; valid: ${PERSONALITIES.join(', ')}`);
  if (s.create !== undefined && typeof s.create !== 'function') throw new SubjectError(`${path}: create must be a function`);
  return s as unknown as GuestSubject;
}

export async function loadToolstackSubject(path: string): Promise<ToolstackSubject> {
  const s = await loadExport(path, 'toolstack');
  if (typeof s.createSaver !== 'function') throw new SubjectError(`${path}: createSaver must be a function`);
  return s as unknown as ToolstackSubject;
}

export const BUILTIN_GUESTS: readonly string[] = GUEST_VARIANT_NAMES;
export const BUILTIN_TOOLSTACKS: readonly string[] = STRATEGIES;
