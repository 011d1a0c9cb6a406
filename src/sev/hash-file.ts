// Streaming reads of launch inputs (kernel, initrd, firmware) for hashing: big reads, never the
// whole file in memory, one pass feeding as many consumers as a caller needs.
// Owns: opening safely (regular files only, no blocking on FIFOs) and mapping I/O failures to
// registry codes. Must not: interpret the bytes (callers hash or parse them).
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { SupervisorError, type ErrorCode } from '../errors.js';
import { describeIoError } from '../util/io-error.js';

/** Read size: 1 MiB keeps syscalls few for 10–100 MiB kernels/initrds while bounding memory. */
export const HASH_READ_BYTES = 1024 * 1024;

export interface ReadChunksOptions {
  /** Registry code for an unreadable file. @default 'SUP_ERR_KERNEL_READ' */
  readonly code?: ErrorCode;
  /** What the file is, for the message ("kernel image", "firmware image"). @default 'file' */
  readonly what?: string;
}

/**
 * Call `onChunk` with consecutive chunks of the regular file at `path`; resolves to its size.
 * @throws `options.code` (default SUP_ERR_KERNEL_READ) when the file is missing, unreadable or not
 * a regular file; details `{path, reason}`.
 */
export async function readFileChunks(path: string, onChunk: (chunk: Buffer) => void, options: ReadChunksOptions = {}): Promise<number> {
  const code = options.code ?? 'SUP_ERR_KERNEL_READ';
  const what = options.what ?? 'file';
  const fail = (reason: string, cause?: unknown): SupervisorError =>
    new SupervisorError(code, `cannot read ${what} ${path}: ${reason}`, {
      details: { path, reason },
      ...(cause === undefined ? {} : { cause }),
    });
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error: unknown) {
    throw fail(describeIoError(error), error);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw fail('not a regular file');
    let size = 0;
    const buffer = Buffer.allocUnsafe(HASH_READ_BYTES);
    for (;;) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(buffer, 0, buffer.length, null));
      } catch (error: unknown) {
        throw fail(describeIoError(error), error);
      }
      if (bytesRead === 0) break;
      size += bytesRead;
      onChunk(buffer.subarray(0, bytesRead));
    }
    return size;
  } finally {
    await handle.close();
  }
}

/**
 * sha256 (lower-case hex) and size of a file, streamed.
 * @throws as readFileChunks.
 */
export async function sha256File(path: string, options: ReadChunksOptions = {}): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  const size = await readFileChunks(path, (chunk) => hash.update(chunk), options);
  return { sha256: hash.digest('hex'), size };
}

/** Keeps the last `limit` bytes of a stream of chunks (chunks are copied: callers reuse buffers). */
export class TailKeeper {
  private tail = Buffer.alloc(0);
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    if (chunk.length >= this.limit) {
      this.tail = Buffer.from(chunk.subarray(chunk.length - this.limit));
      return;
    }
    const keep = Math.min(this.tail.length, this.limit - chunk.length);
    this.tail = Buffer.concat([this.tail.subarray(this.tail.length - keep), chunk]);
  }

  get bytes(): Buffer {
    return this.tail;
  }
}
