/**
 * Typed errors of the ABI layer. They are for programming mistakes and bad input files; guest-visible
 * outcomes of hypercalls are return values, never exceptions.
 */

export class AbiError extends Error {
  override name = 'AbiError';
}

/** A value written to a field does not fit its C type (typed-struct alone would wrap silently). */
export class AbiRangeError extends AbiError {
  override name = 'AbiRangeError';
  constructor(
    readonly path: string,
    readonly value: string,
    readonly bytes: number,
    readonly signed: boolean,
  ) {
    super(`${path}: value ${value} does not fit ${signed ? 'a signed' : 'an unsigned'} ${bytes * 8}-bit field`);
  }
}

/** A view that does not fit its memory, an unknown field, an index out of range. */
export class AbiViewError extends AbiError {
  override name = 'AbiViewError';
}
