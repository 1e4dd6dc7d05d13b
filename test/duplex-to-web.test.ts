/**
 * The Node gunzip as a web transform: it pushes back once about DUPLEX_QUEUE_BYTES wait on its
 * writable side (Node 20's and 22's Duplex.toWeb queue 16384 chunks and still ask for more after
 * 8 MiB; Node 24's pushes back, which is a property of Node, not asserted here), decompresses
 * exactly, and fails on corrupt input instead of hanging.
 */
import { randomBytes } from "node:crypto";
import { createGunzip, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { DUPLEX_QUEUE_BYTES, duplexToWeb } from "../functions/duplex-to-web.js";

const CHUNK = 64 * 1024;

/** Write `chunks` without reading the other side; the writer's desiredSize after each write. */
function desiredSizes(pair: ReadableWritablePair<Uint8Array, Uint8Array>, chunks: Uint8Array[]): (number | null)[] {
  const writer = pair.writable.getWriter();
  const sizes: (number | null)[] = [];
  for (const chunk of chunks) {
    writer.write(chunk).catch(() => undefined);
    sizes.push(writer.desiredSize);
  }
  return sizes;
}

describe("duplexToWeb", () => {
  it("signals backpressure once about its queue of bytes is waiting, when nobody reads", () => {
    // Incompressible gzip input: the gunzip's own output buffer fills and it stops reading.
    const gz = gzipSync(randomBytes(8 * 1024 * 1024), { level: 1 });
    const chunks = Array.from({ length: Math.ceil(gz.length / CHUNK) }, (_, i) => gz.subarray(i * CHUNK, (i + 1) * CHUNK));
    const ours = desiredSizes(duplexToWeb(createGunzip()), chunks);
    const firstFull = ours.findIndex((s) => s !== null && s <= 0);
    expect(firstFull).toBeGreaterThan(0);
    expect(firstFull * CHUNK).toBeLessThanOrEqual(DUPLEX_QUEUE_BYTES + 2 * CHUNK);
  });

  it("decompresses exactly, in chunks of any size", async () => {
    const plain = Buffer.concat([randomBytes(300_000), Buffer.alloc(500_000, 7), randomBytes(12_345)]);
    const gz = gzipSync(plain);
    const source = new ReadableStream<Uint8Array>({
      start(c) {
        for (let at = 0; at < gz.length; at += 777) c.enqueue(gz.subarray(at, at + 777));
        c.close();
      },
    });
    const out = Buffer.from(await new Response(source.pipeThrough(duplexToWeb(createGunzip()))).arrayBuffer());
    expect(Buffer.compare(out, plain)).toBe(0);
  });

  it("fails the read on corrupt input, and the pipe does not hang", async () => {
    const gz = gzipSync(Buffer.alloc(200_000, 1));
    for (const at of [gz.length >> 1, (gz.length >> 1) + 1]) gz[at] = gz[at]! ^ 0xff;
    const source = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(gz);
        c.close();
      },
    });
    await expect(new Response(source.pipeThrough(duplexToWeb(createGunzip()))).arrayBuffer()).rejects.toThrow();
  });
});
