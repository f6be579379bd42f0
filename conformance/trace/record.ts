/**
 * Recording and checking, ready to use: `recordTrace` writes a guest's trace as JSON Lines (to a
 * file or any line sink) and, optionally, checks it online with the guest rules — the very events
 * written are the events checked, so `check-trace` on the file finds what the online check found.
 * `checkTraceText` / `checkTraceFile` apply the rules to a recorded trace.
 */

import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { Xen } from '../../xen-emu/xen.js';
import { GuestRuleChecker, type GuestCheckerOptions } from '../rules/guest/index.js';
import type { RuleReport, RuleViolation } from '../rules/rule.js';
import { formatLine, parseTrace, type TraceEvent, type TraceHeader } from './format.js';
import { TraceRecorder, type RecordableGuest, type RecorderOptions } from './recorder.js';

export interface RecordOptions extends RecorderOptions {
  /** Write the trace to this file (created or truncated). */
  readonly file?: string;
  /** Or hand each line (without newline) to this function. */
  readonly writeLine?: (line: string) => void;
  /** Check the guest rules online as events are recorded. */
  readonly check?: boolean | GuestCheckerOptions;
  /** Also hand each event to this function. */
  readonly onEvent?: (event: TraceEvent) => void;
}

export interface Recording {
  readonly recorder: TraceRecorder;
  readonly header: TraceHeader;
  /** The online checker, when `check` was asked for. */
  readonly checker: GuestRuleChecker | undefined;
  /** Events recorded so far. */
  readonly events: () => number;
  /** Stops recording and closes the file. */
  stop(): void;
}

/** Starts recording `guest` on `xen`; the header is written first. */
export function recordTrace(xen: Xen, guest: RecordableGuest, options: RecordOptions = {}): Recording {
  const fd = options.file === undefined ? undefined : openSync(options.file, 'w');
  const writes = fd !== undefined || options.writeLine !== undefined;
  const write = (line: string): void => {
    if (fd !== undefined) writeSync(fd, `${line}\n`);
    options.writeLine?.(line);
  };
  let checker: GuestRuleChecker | undefined;
  let count = 0;
  let header: TraceHeader | undefined;
  const pending: TraceEvent[] = [];
  const sink = (e: TraceEvent): void => {
    // The recorder emits its first events while it is being made, before its header is known.
    if (header === undefined) {
      pending.push(e);
      return;
    }
    deliver(e);
  };
  const deliver = (e: TraceEvent): void => {
    count++;
    // Formatting is for a file or a line sink; an online check alone needs only the event.
    if (writes) write(formatLine(e));
    checker?.feed(e);
    options.onEvent?.(e);
  };
  const recorder = new TraceRecorder(xen, guest, sink, options);
  header = recorder.header;
  if (writes) write(formatLine(header));
  if (options.check) checker = new GuestRuleChecker(header, typeof options.check === 'object' ? options.check : {});
  for (const e of pending.splice(0)) deliver(e);
  let stopped = false;
  return {
    recorder,
    header,
    checker,
    events: () => count,
    stop() {
      if (stopped) return;
      stopped = true;
      recorder.stop();
      if (fd !== undefined) closeSync(fd);
    },
  };
}

export interface TraceCheckResult {
  readonly header: TraceHeader;
  readonly events: number;
  readonly reports: readonly RuleReport[];
  /** Each kept violation with the 1-based line of its event. */
  readonly violations: readonly (RuleViolation & { readonly line: number })[];
  readonly total: number;
}

/** Applies the guest rules to a trace's text; a malformed trace throws a TraceFormatError. */
export function checkTraceText(text: string, options: GuestCheckerOptions = {}): TraceCheckResult {
  const { header, events } = parseTrace(text);
  const checker = new GuestRuleChecker(header, options);
  for (const { event } of events) checker.feed(event);
  const lineOf = (at: number | undefined): number => (at === undefined ? 0 : events[at]?.line ?? 0);
  return {
    header,
    events: events.length,
    reports: checker.reports(),
    violations: checker.violations().map((v) => ({ ...v, line: lineOf(v.at) })),
    total: checker.total,
  };
}

export function checkTraceFile(path: string, options: GuestCheckerOptions = {}): TraceCheckResult {
  return checkTraceText(readFileSync(path, 'utf8'), options);
}
