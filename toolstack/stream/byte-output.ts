/**
 * Where an encoded stream's bytes go: memory (tests, small streams), a file descriptor (written
 * synchronously, so memory stays at one record whatever the stream's size), or a Node `Writable`
 * (with backpressure: a caller awaits `drain()` between records to keep memory bounded).
 */

import { closeSync, openSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';

export interface ByteOutput {
  /** Takes ownership of `chunk` (the encoder does not reuse it). */
  write(chunk: Uint8Array): void;
  /** Resolves once the destination has taken what it was given (immediately when it is synchronous). */
  drain?(): Promise<void>;
}

/** Collects the chunks in memory. */
export class BufferOutput implements ByteOutput {
  private readonly chunks: Uint8Array[] = [];
  private total = 0;

  write(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  get length(): number {
    return this.total;
  }

  /** The chunks as written (no copy). */
  get written(): readonly Uint8Array[] {
    return this.chunks;
  }

  /** The whole stream as one buffer. */
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.total);
  }
}

/** Writes synchronously to a file descriptor. */
export class FdOutput implements ByteOutput {
  constructor(readonly fd: number) {}

  write(chunk: Uint8Array): void {
    let done = 0;
    while (done < chunk.length) done += writeSync(this.fd, chunk, done, chunk.length - done);
  }

  /** Opens (creates or truncates) `path` for writing. */
  static create(path: string): FdOutput {
    return new FdOutput(openSync(path, 'w'));
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Writes to a Node `Writable`; `drain()` waits out its backpressure, and a stream error surfaces on the next call. */
export class WritableOutput implements ByteOutput {
  private error: Error | undefined;

  constructor(readonly stream: Writable) {
    stream.on('error', (e: Error) => {
      this.error = e;
    });
  }

  write(chunk: Uint8Array): void {
    if (this.error) throw this.error;
    this.stream.write(chunk);
  }

  async drain(): Promise<void> {
    if (this.error) throw this.error;
    if (!this.stream.writableNeedDrain) return;
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.stream.off('drain', done);
        this.stream.off('error', failed);
        resolve();
      };
      const failed = (e: Error): void => {
        this.stream.off('drain', done);
        reject(e);
      };
      this.stream.on('drain', done);
      this.stream.on('error', failed);
    });
  }

  /** Ends the Writable and waits until it has flushed. */
  async close(): Promise<void> {
    if (this.error) throw this.error;
    await new Promise<void>((resolve, reject) => {
      this.stream.once('error', reject);
      this.stream.end(() => resolve());
    });
  }
}
