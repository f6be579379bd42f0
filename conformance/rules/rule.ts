/**
 * What every conformance rule carries (guest rules here, toolstack rules later) and what a rule
 * reports when it is broken. Metadata is data, as XTF's and test262's are: an id to grep for, a
 * title, the rule in one sentence, and where it comes from.
 */

export type RuleSubject = 'guest' | 'toolstack';

export interface RuleMeta {
  /** e.g. `G-GEN-01` (guest) or `T-REMAP-01` (toolstack). */
  readonly id: string;
  readonly subject: RuleSubject;
  readonly title: string;
  /** The rule in one sentence. */
  readonly rule: string;
  /**
   * What it encodes, paraphrased: the Xen header comment (xen/include/public/arch-x86/xen.h,
   * arch_shared_info), the seed mail's paragraph, or the Linux behaviour (by function name).
   */
  readonly reference: string;
}

export interface RuleViolation {
  /** The rule's id. */
  readonly rule: string;
  /** In the kit's failure shape: `Fail: <context>, expected X, got Y` (hex for mfns and addresses). */
  readonly message: string;
  /** Index of the trace event at which it was seen (0-based, in event order; a file reader maps it to a line). */
  readonly at?: number;
  readonly pfn?: number;
  readonly mfn?: number;
}

/** One rule's violations, deduplicated: how many, and the first few. */
export interface RuleReport {
  readonly rule: RuleMeta;
  readonly count: number;
  readonly first: readonly RuleViolation[];
}

export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}
