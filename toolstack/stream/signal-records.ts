/**
 * Mirrors the spec's zero-length signalling records: END (the last record of a stream), VERIFY
 * (what follows re-sends memory for comparison), CHECKPOINT (everything before it is a consistent
 * state; Remus/COLO) and STATIC_DATA_END (v3: the static records are over). Their bodies are empty.
 */

import { bodyError, type RecordCodec } from './codec.js';
import { REC_TYPE_CHECKPOINT, REC_TYPE_END, REC_TYPE_STATIC_DATA_END, REC_TYPE_VERIFY } from './record-types.js';

export type SignalRecordType = typeof REC_TYPE_END | typeof REC_TYPE_VERIFY | typeof REC_TYPE_CHECKPOINT | typeof REC_TYPE_STATIC_DATA_END;

export interface EndRecord {
  readonly type: typeof REC_TYPE_END;
}
export interface VerifyRecord {
  readonly type: typeof REC_TYPE_VERIFY;
}
export interface CheckpointRecord {
  readonly type: typeof REC_TYPE_CHECKPOINT;
}
export interface StaticDataEndRecord {
  readonly type: typeof REC_TYPE_STATIC_DATA_END;
}

export type SignalRecord = EndRecord | VerifyRecord | CheckpointRecord | StaticDataEndRecord;

function signalCodec<R extends SignalRecord>(type: R['type'], spec: string): RecordCodec<R> {
  return {
    type,
    spec,
    bodyLength: () => 0,
    encodeBody() {},
    decodeBody(body, ctx) {
      if (body.length !== 0) bodyError(ctx, 'bad-length', 'body_length', -4, `a signalling record has no body, got ${body.length} bytes`);
      return { type } as R;
    },
    validate() {},
  };
}

export const endCodec = signalCodec<EndRecord>(REC_TYPE_END, 'Records / END');
export const verifyCodec = signalCodec<VerifyRecord>(REC_TYPE_VERIFY, 'Records / VERIFY');
export const checkpointCodec = signalCodec<CheckpointRecord>(REC_TYPE_CHECKPOINT, 'Records / CHECKPOINT');
export const staticDataEndCodec = signalCodec<StaticDataEndRecord>(REC_TYPE_STATIC_DATA_END, 'Records / STATIC_DATA_END');
