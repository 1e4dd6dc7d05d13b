/**
 * A byte stream → one Uint8Array, for sources that download (URL, S3). With a known length
 * the buffer is allocated once at exactly that size; without one it grows by doubling up to
 * the limit. Either way it stops (and cancels the stream) as soon as the bytes cannot be a
 * valid result: more than the limit, more or fewer than announced, or a wrong first chunk.
 */
import { BackupError } from "../errors.js";
import { readHeader } from "../sqlite/header.js";

/** Why a stream could not be read; the caller turns it into an error that names its source. */
export type StreamProblem =
  /** `bytes` exceeds the limit: announced up front (`announced`) or counted while reading. */
  | { kind: "too-large"; bytes: number; limit: number; announced: boolean }
  /** The stream ended with `bytes` (or, not `complete`, ran past `expected` to at least `bytes`). */
  | { kind: "wrong-length"; bytes: number; expected: number; complete: boolean }
  /** The stream itself failed after `bytes` bytes. */
  | { kind: "failed"; bytes: number; expected: number | undefined; cause: unknown };

export interface ReadStreamOptions {
  /** Exact length announced by the sender (Content-Length); the buffer is preallocated. */
  expectedBytes?: number;
  /** The most bytes accepted. */
  maxBytes: number;
  onProgress?: (read: number, total: number | undefined) => void;
  /** Called once with the first `HEAD_BYTES` bytes as soon as they have arrived; throw to stop. */
  checkHead?: (head: Uint8Array) => void;
  problem: (p: StreamProblem) => Error;
}

export const HEAD_BYTES = 16;
const INITIAL_CAPACITY = 1024 * 1024;

export async function readStream(stream: ReadableStream<Uint8Array>, options: ReadStreamOptions): Promise<Uint8Array> {
  const { expectedBytes: expected, maxBytes, onProgress, checkHead, problem } = options;
  const reader = stream.getReader();
  try {
    if (expected !== undefined && expected > maxBytes) {
      throw problem({ kind: "too-large", bytes: expected, limit: maxBytes, announced: true });
    }
    let buffer = new Uint8Array(expected ?? Math.min(INITIAL_CAPACITY, maxBytes));
    let read = 0;
    let headChecked = checkHead === undefined;
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (cause) {
        throw problem({ kind: "failed", bytes: read, expected, cause });
      }
      if (result.done) break;
      const chunk = result.value;
      const next = read + chunk.byteLength;
      if (expected !== undefined) {
        if (next > expected) throw problem({ kind: "wrong-length", bytes: next, expected, complete: false });
      } else {
        if (next > maxBytes) throw problem({ kind: "too-large", bytes: next, limit: maxBytes, announced: false });
        if (next > buffer.length) {
          let capacity = Math.max(buffer.length, 1);
          while (capacity < next) capacity *= 2;
          const grown = new Uint8Array(Math.min(capacity, maxBytes));
          grown.set(buffer.subarray(0, read));
          buffer = grown;
        }
      }
      buffer.set(chunk, read);
      read = next;
      if (!headChecked && read >= HEAD_BYTES) {
        headChecked = true;
        checkHead?.(buffer.subarray(0, HEAD_BYTES));
      }
      onProgress?.(read, expected);
    }
    if (expected !== undefined && read !== expected) throw problem({ kind: "wrong-length", bytes: read, expected, complete: true });
    return read === buffer.length ? buffer : buffer.subarray(0, read);
  } catch (err) {
    // Stop the transfer: the sender must not keep sending what nobody will read.
    await reader.cancel(err).catch(() => undefined);
    throw err;
  } finally {
    reader.releaseLock();
  }
}

/**
 * A head check that stops downloading anything that cannot be a SQLite database, with the
 * same NOT_SQLITE error (and hints: gzip, HTML, encrypted) that `readHeader` gives later.
 * Everything else (page size, truncation…) is left to the full header check on the image.
 */
export function rejectNonSqlite(what: string): (head: Uint8Array) => void {
  return (head) => {
    try {
      readHeader(head, what);
    } catch (err) {
      if (err instanceof BackupError && err.code === "NOT_SQLITE") throw err;
    }
  };
}
