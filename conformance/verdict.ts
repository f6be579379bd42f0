/**
 * XTF's verdicts (DESIGN.md "Verdicts"): SUCCESS < SKIP < ERROR < FAILURE, and CRASH when a run
 * produced no verdict. ERROR: the harness or the test is broken; FAILURE: the guest or toolstack
 * under test is wrong; every SKIP states its reason. The most severe wins and sets the exit code,
 * as XTF's runner does: 0 success, 3 skip, 4 error, 5 failure, 6 crash (2: bad arguments).
 */

export const VERDICTS = ['SUCCESS', 'SKIP', 'ERROR', 'FAILURE', 'CRASH'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** What happened in a cell: the migration's outcome, or a guest rule caught the guest first. */
export const OUTCOMES = ['identical', 'aborted', 'corrupted', 'rule-violation'] as const;
export type CellOutcome = (typeof OUTCOMES)[number];

export const EXIT_CODES: Readonly<Record<Verdict, number>> = Object.freeze({ SUCCESS: 0, SKIP: 3, ERROR: 4, FAILURE: 5, CRASH: 6 });
export const EXIT_BAD_ARGUMENTS = 2;

export function severity(v: Verdict): number {
  return VERDICTS.indexOf(v);
}

/** The most severe of `verdicts` (SUCCESS for none). */
export function worst(verdicts: Iterable<Verdict>): Verdict {
  let w: Verdict = 'SUCCESS';
  for (const v of verdicts) if (severity(v) > severity(w)) w = v;
  return w;
}

/** Short forms for the matrix cells. */
export const SHORT: Readonly<Record<Verdict, string>> = Object.freeze({ SUCCESS: 'ok', SKIP: 'skip', ERROR: 'ERR', FAILURE: 'FAIL', CRASH: 'CRASH' });
