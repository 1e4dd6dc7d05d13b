/**
 * gzip on every core (Node). The input is cut into blocks; each block is compressed into a
 * complete gzip member by node:zlib's asynchronous API, which runs deflate on libuv's thread
 * pool, several blocks at once; the members are emitted in input order. A gzip file may hold
 * any number of members one after another (RFC 1952 §2.2): `gunzip`, zlib and
 * DecompressionStream read them back as one stream, byte for byte the input.
 *
 * Why the thread pool and not worker_threads: no isolate per thread and no copies. Blocks
 * that are consecutive views of one buffer (the image, sliced by sliceStream) are handed to
 * zlib as views, so the cost is the compressed blocks in flight (measured: ~40 MiB growth
 * for 256 MiB at ~140 MiB/s on 2 cores, against ~130 MiB with two worker threads). The ratio
 * stays within ~0.1 % of one stream, since deflate only looks 32 KiB back anyway.
 *
 * Within a block, stretches of random-looking pages (encrypted or already-compressed blobs)
 * are stored rather than deflated (src/gzip-member.ts): deflate is 3× slower there, for
 * nothing.
 */
import { availableParallelism } from "node:os";
import { constants, crc32, deflateRaw, gzip } from "node:zlib";
import { gzipMember, type MemberCodec } from "../src/gzip-member.js";
import type { ByteTransform } from "../src/runtime.js";

export const GZIP_BLOCK_BYTES = 2 * 1024 * 1024;
// zlib hands output back in chunks of this size: large enough that a block needs few trips
// between the pool thread and the main thread, small enough not to over-allocate.
const ZLIB_CHUNK_BYTES = 512 * 1024;

/**
 * Stretches are often a few KiB: an output buffer of ZLIB_CHUNK_BYTES for each would be
 * mostly empty, and held until the member is assembled. Deflate output fits in the input's
 * size plus 5 bytes per 16 KiB block and the flush marker.
 */
function outputChunk(inputBytes: number): number {
  return Math.min(ZLIB_CHUNK_BYTES, inputBytes + (inputBytes >> 10) + 1024);
}

/**
 * node:zlib for gzip-member.ts, at most `concurrency` calls at once: a block with many
 * stretches to deflate would otherwise hold a zlib state (~300 KiB) per stretch while they
 * wait for the thread pool.
 */
function nodeCodec(concurrency: number): MemberCodec {
  let running = 0;
  const waiting: (() => void)[] = [];
  const limited = async <T>(work: () => Promise<T>): Promise<T> => {
    if (running >= concurrency) await new Promise<void>((r) => waiting.push(r));
    running++;
    try {
      return await work();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
  return {
    gzip: (data, level) =>
      limited(() => new Promise((resolve, reject) => gzip(data, { level, chunkSize: ZLIB_CHUNK_BYTES }, (err, out) => (err ? reject(err) : resolve(out))))),
    deflateRaw: (data, level) =>
      limited(
        () =>
          new Promise((resolve, reject) =>
            deflateRaw(data, { level, chunkSize: outputChunk(data.length), finishFlush: constants.Z_SYNC_FLUSH }, (err, out) => (err ? reject(err) : resolve(out))),
          ),
      ),
    crc32: (data, value) => crc32(data, value),
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface ParallelGzipOptions {
  blockBytes?: number;
  /** Blocks being compressed at once; libuv's pool has 4 threads by default (UV_THREADPOOL_SIZE). */
  inFlight?: number;
}

/**
 * A gzip transform compressing blocks of `blockBytes`, `inFlight` at a time, emitting members
 * in order. Chunks are read after `write` resolves (as views, not copies): like any stream
 * chunk, they must not be modified once written.
 */
export function parallelGzip(level: number, options: ParallelGzipOptions = {}): ByteTransform {
  const blockBytes = options.blockBytes ?? GZIP_BLOCK_BYTES;
  const inFlight = options.inFlight ?? availableParallelism() + 1;
  // One more zlib call than blocks in flight: the pool (4 threads) stays busy while the main
  // thread plans the next block.
  const codec = nodeCodec(inFlight + 1);
  interface Job {
    result: Promise<Uint8Array[]>;
    done?: Uint8Array[];
    /** The pooled block the input was copied into: free again once the member is emitted. */
    pooled?: Uint8Array;
  }
  const queue: Job[] = [];
  // The block being gathered: consecutive views of one buffer (no copy), or bytes copied
  // into a block from the pool when the chunks are buffers of their own (a file read in
  // chunks). The pool holds at most inFlight + 1 blocks, reused for the whole stream: a new
  // block per copy was garbage the collector let pile up (bench/node-memory.ts).
  let view: Uint8Array | undefined;
  let copy: Uint8Array | undefined;
  let filled = 0;
  const pool: Uint8Array[] = [];

  const pending = () => (view ? view.byteLength : filled);
  const submit = () => {
    let input: Uint8Array;
    let pooled: Uint8Array | undefined;
    if (view) {
      input = view;
      view = undefined;
    } else {
      input = copy ? copy.subarray(0, filled) : new Uint8Array(0);
      pooled = copy;
      copy = undefined;
      filled = 0;
    }
    const job: Job = { result: gzipMember(input, level, codec), ...(pooled ? { pooled } : {}) };
    // Rejections are observed when the job is awaited in order.
    job.result.then((out) => (job.done = out), () => undefined);
    queue.push(job);
  };

  // A member with stored stretches comes in many small parts (5-byte block headers among
  // them); one chunk per member keeps the per-chunk cost of the streams downstream per member.
  // The chunk never shares memory with a pooled block: a member of one part is zlib's output,
  // one of several (stored stretches are views of the block) is copied by concat.
  const emit = (controller: TransformStreamDefaultController<Uint8Array>, job: Job, parts: Uint8Array[]) => {
    controller.enqueue(parts.length === 1 ? parts[0]! : concat(parts));
    if (job.pooled) pool.push(job.pooled);
  };
  const next = async (controller: TransformStreamDefaultController<Uint8Array>) => {
    const job = queue.shift()!;
    emit(controller, job, await job.result);
  };

  return new TransformStream<Uint8Array, Uint8Array>(
    {
      async transform(chunk, controller) {
        // Wait only when too many blocks are in flight; pass on whatever is already done, so
        // the upload starts with the first member, not after `inFlight` of them.
        const drain = async () => {
          while (queue.length >= inFlight) await next(controller);
          while (queue[0]?.done) await next(controller);
        };
        const continues = view !== undefined && view.buffer === chunk.buffer && view.byteOffset + view.byteLength === chunk.byteOffset;
        // A view when the chunk is part of a larger buffer (a slice of the image: the next
        // chunk likely continues it) or fills a block by itself; else it is copied.
        const viewable = chunk.byteLength >= blockBytes || chunk.byteLength < chunk.buffer.byteLength;
        if (copy === undefined && (view === undefined ? viewable : continues)) {
          view = view ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength + chunk.byteLength) : chunk;
        } else {
          if (view) submit();
          let at = 0;
          while (at < chunk.length) {
            copy ??= pool.pop() ?? new Uint8Array(blockBytes);
            const n = Math.min(chunk.length - at, copy.length - filled);
            copy.set(chunk.subarray(at, at + n), filled);
            filled += n;
            at += n;
            if (filled === copy.length) {
              submit();
              await drain();
            }
          }
        }
        if (pending() >= blockBytes) submit();
        await drain();
      },
      async flush(controller) {
        // An empty input still becomes a valid (empty) gzip file.
        if (pending() > 0 || queue.length === 0) submit();
        while (queue.length) await next(controller);
      },
    },
    { highWaterMark: 1 },
    { highWaterMark: 1 },
  );
}
