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
  /**
   * guardStream only: after the body failed with `from` bytes read, a body that continues at
   * byte `from` of the same content (a range request pinned to the version read so far), or a
   * throw (SourceChanged when the content is no longer the same). Tried up to RESUMES times.
   */
  resume?: (from: number, cause: unknown) => Promise<ReadableStream<Uint8Array>>;
}

/** How many times guardStream continues a body that broke off (each time from where it broke). */
export const RESUMES = 3;

export const HEAD_BYTES = 16;
const INITIAL_CAPACITY = 1024 * 1024;

export async function readStream(stream: ReadableStream<Uint8Array>, options: ReadStreamOptions): Promise<Uint8Array> {
  const { expectedBytes: expected, maxBytes, problem } = options;
  const byob = expected !== undefined ? byobReader(stream) : undefined;
  const reader = byob ?? stream.getReader();
  try {
    if (expected !== undefined && expected > maxBytes) {
      throw problem({ kind: "too-large", bytes: expected, limit: maxBytes, announced: true });
    }
    if (byob && expected !== undefined) return await readInPlace(byob, expected, options);
    let buffer = new Uint8Array(expected ?? Math.min(INITIAL_CAPACITY, maxBytes));
    let read = 0;
    const arrived = onArrival(options, expected);
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await (reader as ReadableStreamDefaultReader<Uint8Array>).read(); // the BYOB case returned above
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
      arrived(read, buffer);
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

/** Both read paths, after each read: the head check once its bytes are in, then progress. */
function onArrival({ checkHead, onProgress }: ReadStreamOptions, expected: number | undefined): (read: number, bytes: Uint8Array) => void {
  let headChecked = checkHead === undefined;
  return (read, bytes) => {
    if (!headChecked && read >= HEAD_BYTES) {
      headChecked = true;
      checkHead?.(bytes.subarray(0, HEAD_BYTES));
    }
    onProgress?.(read, expected);
  };
}

/** A BYOB reader if the stream is a byte stream (fetch bodies in workerd), else undefined. */
function byobReader(stream: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | undefined {
  try {
    return (stream as ReadableStream<Uint8Array> & { getReader(o: { mode: "byob" }): ReadableStreamBYOBReader }).getReader({ mode: "byob" });
  } catch {
    return undefined;
  }
}

/**
 * The known-length case with a BYOB reader: the stream writes straight into the image's
 * buffer, so no chunk is allocated per read. With a default reader every chunk is a new
 * buffer, garbage once copied: the Worker's RSS grew by 104 MiB while reading a 90.3 MiB
 * database that way and by 91 MiB this way (bench/workerd-memory.ts). A read transfers the
 * buffer it fills, so each read goes into the buffer the previous one returned.
 */
async function readInPlace(reader: ReadableStreamBYOBReader, expected: number, options: ReadStreamOptions): Promise<Uint8Array> {
  const { problem } = options;
  let buffer = new ArrayBuffer(expected);
  let read = 0;
  const arrived = onArrival(options, expected);
  const next = async (view: Uint8Array): Promise<ReadableStreamReadResult<Uint8Array>> => {
    try {
      return (await reader.read(view)) as ReadableStreamReadResult<Uint8Array>;
    } catch (cause) {
      throw problem({ kind: "failed", bytes: read, expected, cause });
    }
  };
  while (read < expected) {
    const result = await next(new Uint8Array(buffer, read, expected - read));
    if (result.value) buffer = result.value.buffer as ArrayBuffer;
    if (result.done) throw problem({ kind: "wrong-length", bytes: read, expected, complete: true });
    read += result.value.byteLength;
    arrived(read, new Uint8Array(buffer, 0, read));
  }
  // All announced bytes are in: anything more is a wrong length.
  const extra = await next(new Uint8Array(64 * 1024));
  if (!extra.done) throw problem({ kind: "wrong-length", bytes: read + extra.value.byteLength, expected, complete: false });
  return new Uint8Array(buffer);
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

/** Bytes per read of a streamed body (guardStream) that is a byte stream. */
export const STREAM_READ_BYTES = 16 * 1024;

/**
 * The streaming counterpart of readStream: the body passed on chunk by chunk, with the same
 * checks (announced length, MAX_BYTES, the head check) and failures turned into the
 * source's errors by `problem`. Nothing is buffered; the body is cancelled on failure.
 *
 * A byte stream (fetch bodies in workerd and Node) is read with a BYOB reader into
 * STREAM_READ_BYTES buffers: workerd's default reader hands over 4 KiB per read, and every
 * chunk costs each stage downstream (hash, check, gzip, count) its own promises and calls.
 * Reading a 64 MiB body that way took 914 ms in workerd, and 110 ms in 64 KiB reads; a
 * streamed backup took 33–44 ms of CPU per MiB in 16 KiB reads instead of 51–66. 64 KiB reads
 * saved ~15 % more CPU but grew workerd's RSS by 136–146 MiB instead of 92–122
 * (bench/workerd-results.md).
 */
export function guardStream(body: ReadableStream<Uint8Array>, options: ReadStreamOptions): ReadableStream<Uint8Array> {
  const { expectedBytes: expected, maxBytes, problem } = options;
  let byob = byobReader(body);
  let reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader = byob ?? body.getReader();
  let resumes = 0;
  let buffer = new ArrayBuffer(STREAM_READ_BYTES);
  /** A chunk of its own: a read that filled most of its buffer keeps it, a smaller one is copied out and the buffer read into again. */
  const own = (value: Uint8Array): Uint8Array => {
    if (!byob) return value;
    if (value.byteLength * 2 >= STREAM_READ_BYTES) {
      buffer = new ArrayBuffer(STREAM_READ_BYTES);
      return value;
    }
    buffer = value.buffer as ArrayBuffer;
    return value.slice();
  };
  const readNext = async (): Promise<ReadableStreamReadResult<Uint8Array>> => {
    for (;;) {
      try {
        return byob ? ((await byob.read(new Uint8Array(buffer))) as ReadableStreamReadResult<Uint8Array>) : await (reader as ReadableStreamDefaultReader<Uint8Array>).read();
      } catch (cause) {
        // A BYOB read that failed may have kept its buffer (detached): read into a new one.
        buffer = new ArrayBuffer(STREAM_READ_BYTES);
        if (!options.resume || resumes >= RESUMES || (expected !== undefined && read >= expected)) throw problem({ kind: "failed", bytes: read, expected, cause });
        resumes++;
        reader.releaseLock();
        const next = await options.resume(read, cause);
        byob = byobReader(next);
        reader = byob ?? next.getReader();
      }
    }
  };
  let read = 0;
  let head: Uint8Array | undefined = options.checkHead ? new Uint8Array(0) : undefined;
  const fail = async (controller: ReadableStreamDefaultController<Uint8Array>, err: unknown) => {
    await reader.cancel(err).catch(() => undefined);
    controller.error(err);
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (expected !== undefined && expected > maxBytes) {
          return fail(controller, problem({ kind: "too-large", bytes: expected, limit: maxBytes, announced: true }));
        }
      },
      async pull(controller) {
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          result = await readNext();
        } catch (err) {
          controller.error(err);
          return;
        }
        if (result.done) {
          if (expected !== undefined && read !== expected) return fail(controller, problem({ kind: "wrong-length", bytes: read, expected, complete: true }));
          if (head && head.length > 0) options.checkHead!(head);
          controller.close();
          return;
        }
        const chunk = own(result.value);
        read += chunk.byteLength;
        if (expected !== undefined && read > expected) return fail(controller, problem({ kind: "wrong-length", bytes: read, expected, complete: false }));
        if (read > maxBytes) return fail(controller, problem({ kind: "too-large", bytes: read, limit: maxBytes, announced: false }));
        if (head) {
          const joined = new Uint8Array(Math.min(HEAD_BYTES, head.length + chunk.byteLength));
          joined.set(head);
          joined.set(chunk.subarray(0, joined.length - head.length), head.length);
          head = joined;
          if (head.length >= HEAD_BYTES) {
            try {
              options.checkHead!(head);
            } catch (err) {
              return fail(controller, err);
            }
            head = undefined;
          }
        }
        options.onProgress?.(read, expected);
        controller.enqueue(chunk);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
