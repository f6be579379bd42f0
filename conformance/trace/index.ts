/** Guest traces: the format, the online recorder, recording to files and checking recorded traces. */
export * from './format.js';
export { TraceRecorder, type RecordableGuest, type RecorderOptions, type TraceSink } from './recorder.js';
export { recordTrace, checkTraceText, checkTraceFile, type RecordOptions, type Recording, type TraceCheckResult } from './record.js';
