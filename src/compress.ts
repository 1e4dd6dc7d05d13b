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
