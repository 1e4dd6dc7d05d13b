/**
 * Streams over one in-memory image: slices are views, never copies, and only a bounded
 * number of them are in flight, so compressing a database costs its compressed parts in
 * flight, not a second copy of it.
 */
import type { ByteTransform, Sha256 } from "./runtime.js";

export const SLICE_BYTES = 1024 * 1024;

/** The image as a stream of views of `sliceBytes`, produced only as fast as they are consumed. */
export function sliceStream(bytes: Uint8Array, sliceBytes = SLICE_BYTES): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (offset >= bytes.length) {
          controller.close();
          return;
        }
        const end = Math.min(offset + sliceBytes, bytes.length);
        controller.enqueue(bytes.subarray(offset, end));
        offset = end;
      },
    },
    { highWaterMark: 1 },
  );
}

/**
 * `stream.pipeThrough(pair)`, pumped by a loop instead of pipeTo: workerd's pipeTo chains each
 * step's promise onto the previous one, so once writes wait (backpressure) a pipe keeps two
 * promises per chunk alive until it ends (a heap snapshot of a streamed backup in workerd: one
 * chain of 98 000 promises, 4.5 MiB, at 163 MiB read; bench/workerd-results.md). Same errors
 * both ways: a failed source aborts the writable side, a failed write cancels the source.
 */
export function through(stream: ReadableStream<Uint8Array>, pair: ReadableWritablePair<Uint8Array, Uint8Array>): ReadableStream<Uint8Array> {
  void pump(stream, pair.writable);
  return pair.readable;
}

async function pump(from: ReadableStream<Uint8Array>, to: WritableStream<Uint8Array>): Promise<void> {
  const reader = from.getReader();
  const writer = to.getWriter();
  let reading = true;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      reading = false;
      await writer.write(value);
      reading = true;
    }
    await writer.close();
  } catch (err) {
    if (reading) await writer.abort(err).catch(() => undefined);
    else await reader.cancel(err).catch(() => undefined);
  }
}

/** Passes bytes through, reporting the running total. */
export function countBytes(onCount: (total: number) => void): TransformStream<Uint8Array, Uint8Array> {
  let total = 0;
  return new TransformStream({
    transform(chunk, controller) {
      total += chunk.byteLength;
      onCount(total);
      controller.enqueue(chunk);
    },
  });
}

/**
 * Passes bytes through, but ends only once `verdict` resolves, and fails as soon as it
 * rejects: an upload reading this stream cannot complete before the verdict, and is aborted
 * (nothing committed) when it fails.
 */
export function endAfter(verdict: Promise<unknown>): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    start(controller) {
      verdict.catch((err: unknown) => {
        try {
          controller.error(err);
        } catch {
          // already ended or failed
        }
      });
    },
    async flush() {
      await verdict;
    },
  });
}

export function gzipImage(bytes: Uint8Array, gzip: ByteTransform, onCompressed: (total: number) => void): ReadableStream<Uint8Array> {
  return sliceStream(bytes).pipeThrough(gzip).pipeThrough(countBytes(onCompressed));
}

export async function sha256Of(bytes: Uint8Array, hasher: Sha256, sliceBytes = 8 * SLICE_BYTES): Promise<string> {
  for (let offset = 0; offset < bytes.length; offset += sliceBytes) {
    hasher.update(bytes.subarray(offset, Math.min(offset + sliceBytes, bytes.length)));
  }
  return hasher.digest();
}
