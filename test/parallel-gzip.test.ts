/**
 * Multi-member gzip compressed on libuv's thread pool: whatever the block size and however the
 * chunks arrive, the members decompress (with zlib and with the system's gunzip) to exactly
 * the input, in order.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { parallelGzip } from "../functions/parallel-gzip.js";
import { sliceStream } from "../src/compress.js";
import { mulberry32 } from "./helpers/random.js";

async function collect(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
  return Buffer.concat(parts);
}

/** Half compressible text, half random bytes, so members differ in size and content. */
function sample(bytes: number, seed: number): Uint8Array {
  const rnd = mulberry32(seed);
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = i % 4096 < 2048 ? 97 + (i % 26) : Math.floor(rnd() * 256);
  return out;
}

/** Occurrences of the gzip member magic (1f 8b 08): at least one per member. */
function memberCount(gz: Buffer): number {
  let count = 0;
  for (let i = 0; i + 2 < gz.length; i++) if (gz[i] === 0x1f && gz[i + 1] === 0x8b && gz[i + 2] === 8) count++;
  return count;
}

describe("parallel gzip", () => {
  it.each([
    ["several full blocks and a short tail", 5 * 1024 * 1024 + 12345, 1024 * 1024, 1],
    ["exactly two blocks", 2 * 1024 * 1024, 1024 * 1024, 6],
    ["one block larger than the input", 300_000, 1024 * 1024, 9],
  ])("%s decompress to exactly the input", async (_label, bytes, blockBytes, level) => {
    const input = sample(bytes, bytes);
    const gz = await collect(sliceStream(input, 256 * 1024).pipeThrough(parallelGzip(level, { blockBytes })));
    const back = gunzipSync(gz);
    expect(back.length).toBe(input.length);
    expect(createHash("sha256").update(back).digest("hex")).toBe(createHash("sha256").update(input).digest("hex"));
    expect(memberCount(gz)).toBeGreaterThanOrEqual(Math.ceil(bytes / blockBytes));
    // The system gunzip (not only zlib) reads the members as one stream.
    const viaCli = execFileSync("gzip", ["-dc"], { input: gz, maxBuffer: 64 * 1024 * 1024 });
    expect(Buffer.compare(viaCli, Buffer.from(input))).toBe(0);
  });

  it("stores runs of random pages: a mostly random image comes back exactly, no larger than its size plus framing", async () => {
    const rnd = mulberry32(5);
    // 64 KiB of random bytes, then 8 KiB of text, repeated: like overflow pages of blobs between rows.
    const input = new Uint8Array(6 * 1024 * 1024 + 999);
    for (let i = 0; i < input.length; i++) input[i] = i % (72 * 1024) < 64 * 1024 ? Math.floor(rnd() * 256) : 97 + (i % 26);
    const gz = await collect(sliceStream(input, 256 * 1024).pipeThrough(parallelGzip(1, { blockBytes: 1024 * 1024 })));
    expect(Buffer.compare(gunzipSync(gz), Buffer.from(input))).toBe(0);
    expect(Buffer.compare(execFileSync("gzip", ["-dc"], { input: gz, maxBuffer: 64 * 1024 * 1024 }), Buffer.from(input))).toBe(0);
    // Deflating the random runs would cost a little over their size; storing them costs 5 bytes per 64 KiB.
    const randomBytes = Math.floor(input.length / (72 * 1024)) * 64 * 1024;
    expect(gz.length).toBeLessThan(randomBytes * 1.001 + (input.length - randomBytes) * 0.2);
  });

  it("takes contiguous views of one buffer as they are, and copies chunks that do not continue them", async () => {
    const plain = sample(3 * 1024 * 1024 + 777, 11);
    const image = plain.slice();
    // Views of the image, then a chunk of another buffer, then views that jump back and forth.
    const mixed = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(image.subarray(0, 1000));
        c.enqueue(image.subarray(1000, 5000));
        c.enqueue(plain.slice(5000, 9000));
        c.enqueue(image.subarray(100_000, 200_000));
        c.enqueue(image.subarray(9000, 20_000));
        c.close();
      },
    });
    const expected = Buffer.concat([plain.subarray(0, 9000), plain.subarray(100_000, 200_000), plain.subarray(9000, 20_000)]);
    expect(Buffer.compare(gunzipSync(await collect(mixed.pipeThrough(parallelGzip(6, { blockBytes: 4096 })))), expected)).toBe(0);
  });

  it("copies chunks of their own buffers into reused blocks; no emitted chunk changes afterwards", async () => {
    // As a file is read: chunks of their own buffers, smaller than a block. Random runs make
    // members of stored stretches (views of the block until emitted), so a block reused too
    // early would change chunks already emitted: they are all held and checked at the end.
    const rnd = mulberry32(21);
    const input = new Uint8Array(9 * 256 * 1024 + 4321);
    for (let i = 0; i < input.length; i++) input[i] = i % (40 * 1024) < 24 * 1024 ? Math.floor(rnd() * 256) : 97 + (i % 26);
    let at = 0;
    const own = new ReadableStream<Uint8Array>({
      pull(c) {
        if (at >= input.length) return c.close();
        const n = Math.min(100_000, input.length - at);
        c.enqueue(input.slice(at, at + n));
        at += n;
      },
    });
    const chunks: Uint8Array[] = [];
    const reader = own.pipeThrough(parallelGzip(1, { blockBytes: 256 * 1024, inFlight: 2 })).getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      chunks.push(r.value);
      await new Promise((resolve) => setTimeout(resolve, 1)); // a slow consumer: blocks cycle through the pool meanwhile
    }
    expect(Buffer.compare(gunzipSync(Buffer.concat(chunks)), Buffer.from(input))).toBe(0);
    expect(memberCount(Buffer.concat(chunks))).toBeGreaterThanOrEqual(Math.ceil(input.length / (256 * 1024)));
  });

  it("keeps the order when later blocks finish first", async () => {
    // Block 0 is random (slow to compress at level 9), the rest are zeros (fast).
    const input = new Uint8Array(4 * 512 * 1024);
    input.set(sample(512 * 1024, 7).map((x) => x | 1), 0);
    const gz = await collect(sliceStream(input, 64 * 1024).pipeThrough(parallelGzip(9, { blockBytes: 512 * 1024, inFlight: 4 })));
    expect(Buffer.compare(gunzipSync(gz), Buffer.from(input))).toBe(0);
  });

  it("turns an empty input into a valid empty gzip file", async () => {
    const gz = await collect(sliceStream(new Uint8Array(0)).pipeThrough(parallelGzip(6)));
    expect(gz.length).toBeGreaterThan(0);
    expect(gunzipSync(gz).length).toBe(0);
  });

  it("fails the stream when zlib cannot compress", async () => {
    await expect(collect(sliceStream(sample(1000, 1)).pipeThrough(parallelGzip(42)))).rejects.toThrow(/level/i);
  });
});
