/**
 * functions/paced-transform.ts against a compressor with workerd's behaviour (every write
 * accepted at once, its output queued until read): the source is read only as fast as the
 * output is taken, output withheld for a while (zlib's block) does not stall it, the bytes
 * come out in order, and failures travel both ways. In workerd: test/workers (the Worker's
 * gzip) and bench/workerd-memory.ts.
 */
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { FEED_BYTES, pacedTransform } from "../functions/paced-transform.js";
import { through } from "../src/compress.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** workerd's CompressionStream, without the compression: writes never wait, output piles up. `holdBytes`: output is released in lumps of at least that much input. */
function greedy(holdBytes = 0, onWrite?: (bytes: number) => void): ReadableWritablePair<Uint8Array, Uint8Array> {
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  const release = (c: TransformStreamDefaultController<Uint8Array>) => {
    if (heldBytes === 0) return;
    const out = new Uint8Array(heldBytes);
    let at = 0;
    for (const h of held) {
      out.set(h, at);
      at += h.byteLength;
    }
    held = [];
    heldBytes = 0;
    c.enqueue(out);
  };
  return new TransformStream<Uint8Array, Uint8Array>(
    {
      transform(chunk, c) {
        onWrite?.(chunk.byteLength);
        held.push(chunk.slice());
        heldBytes += chunk.byteLength;
        if (heldBytes >= holdBytes) release(c);
      },
      flush: release,
    },
    { highWaterMark: Infinity },
    { highWaterMark: Infinity },
  );
}

/** `total` bytes in `chunk`-sized pieces (byte i = i mod 251), produced only when asked; `pulled()` says how many so far. */
function counted(total: number, chunk: number, fail?: Error) {
  let pulled = 0;
  let cancelled: unknown;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(c) {
        if (pulled >= total) return fail ? c.error(fail) : c.close();
        const n = Math.min(chunk, total - pulled);
        c.enqueue(Uint8Array.from({ length: n }, (_, i) => (pulled + i) % 251));
        pulled += n;
      },
      cancel(reason) {
        cancelled = reason ?? "cancelled";
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => pulled, cancelled: () => cancelled };
}

const settle = (ms = 50) => new Promise((r) => setTimeout(r, ms));

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  return new Uint8Array(Buffer.concat(parts));
}

describe("pacedTransform", () => {
  it("reads the source only as fast as its output is taken", async () => {
    // Without it: the whole source goes into the compressor while nobody reads.
    const bare = counted(8 * MiB, 16 * KiB);
    const bareOut = through(bare.stream, greedy()).getReader();
    await bareOut.read();
    await settle();
    expect(bare.pulled()).toBe(8 * MiB);
    await bareOut.cancel();

    const src = counted(8 * MiB, 16 * KiB);
    const out = through(src.stream, pacedTransform(greedy())).getReader();
    for (let i = 0; i < 3; i++) {
      await out.read();
      await settle();
      // What the pump fed since the compressor was last empty, one chunk in the slot, one in flight.
      expect(src.pulled()).toBeLessThanOrEqual((i + 1) * 16 * KiB + FEED_BYTES + 2 * 16 * KiB);
    }
    await out.cancel();
  });

  it("keeps feeding a compressor that withholds its output, and passes every byte in order", async () => {
    const total = 3 * MiB + 12_345;
    const src = counted(total, 10_000);
    const out = await readAll(through(src.stream, pacedTransform(greedy(MiB))));
    expect(out.length).toBe(total);
    expect(out.every((b, i) => b === i % 251)).toBe(true);
  });

  it("writes chunks larger than FEED_BYTES in FEED_BYTES slices", async () => {
    const total = 5 * FEED_BYTES + 7;
    const writes: number[] = [];
    const out = await readAll(through(counted(total, total).stream, pacedTransform(greedy(0, (n) => writes.push(n)))));
    expect(writes).toEqual([...Array(5).fill(FEED_BYTES), 7]);
    expect(out.every((b, i) => b === i % 251)).toBe(true);
  });

  it("gzips with a real compressor", async () => {
    const src = counted(2 * MiB, 64 * KiB);
    const gz = await readAll(through(src.stream, pacedTransform(new CompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>)));
    const plain = gunzipSync(gz);
    expect(plain.length).toBe(2 * MiB);
    expect(plain.every((b, i) => b === i % 251)).toBe(true);
  });

  it("fails its output when the source fails", async () => {
    const boom = new Error("source cut");
    const src = counted(MiB, 16 * KiB, boom);
    await expect(readAll(through(src.stream, pacedTransform(greedy())))).rejects.toBe(boom);
  });

  it("cancels the source when its output is cancelled", async () => {
    const src = counted(8 * MiB, 16 * KiB);
    const out = through(src.stream, pacedTransform(greedy())).getReader();
    await out.read();
    await out.cancel(new Error("upload aborted"));
    await settle();
    expect(src.cancelled()).toBeInstanceOf(Error);
    expect(src.pulled()).toBeLessThan(MiB);
  });
});
