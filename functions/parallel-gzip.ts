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
 */
import { availableParallelism } from "node:os";
import { gzip } from "node:zlib";
import type { ByteTransform } from "../src/runtime.js";

export const GZIP_BLOCK_BYTES = 2 * 1024 * 1024;
// zlib hands output back in chunks of this size: large enough that a block needs few trips
// between the pool thread and the main thread, small enough not to over-allocate.
const ZLIB_CHUNK_BYTES = 512 * 1024;

function gzipMember(block: Uint8Array, level: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => gzip(block, { level, chunkSize: ZLIB_CHUNK_BYTES }, (err, out) => (err ? reject(err) : resolve(out))));
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
  interface Job {
    result: Promise<Uint8Array>;
    done?: Uint8Array;
  }
  const queue: Job[] = [];
  // The block being gathered: consecutive views of one buffer (no copy), or bytes copied
  // into a block of its own when the chunks are not contiguous.
  let view: Uint8Array | undefined;
  let copy: Uint8Array | undefined;
  let filled = 0;

  const pending = () => (view ? view.byteLength : filled);
  const submit = () => {
    let input: Uint8Array;
    if (view) {
      input = view;
      view = undefined;
    } else {
      input = copy ? copy.subarray(0, filled) : new Uint8Array(0);
      copy = undefined;
      filled = 0;
    }
    const job: Job = { result: gzipMember(input, level) };
    // Rejections are observed when the job is awaited in order.
    job.result.then((out) => (job.done = out), () => undefined);
    queue.push(job);
  };

  return new TransformStream<Uint8Array, Uint8Array>(
    {
      async transform(chunk, controller) {
        // Wait only when too many blocks are in flight; pass on whatever is already done, so
        // the upload starts with the first member, not after `inFlight` of them.
        const drain = async () => {
          while (queue.length >= inFlight) controller.enqueue(await queue.shift()!.result);
          while (queue[0]?.done) controller.enqueue(queue.shift()!.done!);
        };
        const continues = view !== undefined && view.buffer === chunk.buffer && view.byteOffset + view.byteLength === chunk.byteOffset;
        if (copy === undefined && (view === undefined || continues)) {
          view = view ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength + chunk.byteLength) : chunk;
        } else {
          if (view) submit();
          let at = 0;
          while (at < chunk.length) {
            copy ??= new Uint8Array(blockBytes);
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
        while (queue.length) controller.enqueue(await queue.shift()!.result);
      },
    },
    { highWaterMark: 1 },
    { highWaterMark: 1 },
  );
}
