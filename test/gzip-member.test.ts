/**
 * A gzip member that stores incompressible stretches: whatever the mix of random and
 * compressible bytes, zlib, the system's gunzip and the web DecompressionStream (what a
 * Worker restores with) read it back as exactly the block; random stretches are stored
 * (the size is exact), and the decision follows the content.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants, crc32, deflateRawSync, gunzipSync, gzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { gzipMember, looksIncompressible, MAX_STORED_BLOCK, MIN_STORED_UNITS, planSegments, storedBlocks, UNIT_BYTES, type MemberCodec } from "../src/gzip-member.js";
import { makeDatabase } from "./helpers/db.js";
import { mulberry32 } from "./helpers/random.js";

/** node:zlib, synchronously: the same functions the Node runtime uses on its thread pool. */
const calls = { deflateRaw: 0, gzip: 0 };
const codec: MemberCodec = {
  deflateRaw: async (data, level) => {
    calls.deflateRaw++;
    return deflateRawSync(data, { level, finishFlush: constants.Z_SYNC_FLUSH });
  },
  gzip: async (data, level) => {
    calls.gzip++;
    return gzipSync(data, { level });
  },
  crc32: (data, value) => crc32(data, value),
};

const concat = (parts: Uint8Array[]) => Buffer.concat(parts);

function text(bytes: number, seed: number): Uint8Array {
  const rnd = mulberry32(seed);
  const words = ["select", "from", "users", "where", "id", "=", "42", "{\"kind\":\"login\"}", "événement", "\n"];
  let s = "";
  while (s.length < bytes) s += words[Math.floor(rnd() * words.length)] + " ";
  return new TextEncoder().encode(s).subarray(0, bytes);
}

function random(bytes: number, seed: number): Uint8Array {
  const rnd = mulberry32(seed);
  return Uint8Array.from({ length: bytes }, () => Math.floor(rnd() * 256));
}

async function decompressWeb(gz: Uint8Array): Promise<Buffer> {
  const stream = new Blob([new Uint8Array(gz)]).stream().pipeThrough(new DecompressionStream("gzip"));
  return Buffer.from(await new Response(stream).arrayBuffer());
}

describe("looksIncompressible", () => {
  it("says yes for random bytes and no for text, JSON, zeros and SQLite pages", async () => {
    expect(looksIncompressible(randomBytes(UNIT_BYTES), 0, UNIT_BYTES)).toBe(true);
    expect(looksIncompressible(text(UNIT_BYTES, 1), 0, UNIT_BYTES)).toBe(false);
    expect(looksIncompressible(new Uint8Array(UNIT_BYTES), 0, UNIT_BYTES)).toBe(false);
    const json = new TextEncoder().encode(JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ id: i, email: `u${i}@example.test`, score: i * 1.5 }))));
    expect(looksIncompressible(json, 0, UNIT_BYTES)).toBe(false);
    // The table and index pages of a real database (no blobs) are all deflated.
    const db = await makeDatabase({ rows: 400 });
    for (let at = 0; at < db.length; at += UNIT_BYTES) expect(looksIncompressible(db, at, at + UNIT_BYTES)).toBe(false);
  });

  it("leaves stretches too short to judge to deflate", () => {
    expect(looksIncompressible(randomBytes(1000), 0, 1000)).toBe(false);
  });
});

describe("planSegments", () => {
  it("covers the block exactly, in order, alternating, storing only runs of enough random units", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 3 * UNIT_BYTES })), { minLength: 1, maxLength: 12 }), fc.integer(), (pieces, seed) => {
        const block = Buffer.concat(pieces.map(([rnd, n], i) => (rnd ? random(n, seed + i) : text(n, seed + i))));
        const segments = planSegments(block);
        expect(segments[0]!.start).toBe(0);
        expect(segments.at(-1)!.end).toBe(block.length);
        for (let i = 1; i < segments.length; i++) {
          expect(segments[i]!.start).toBe(segments[i - 1]!.end);
          expect(segments[i]!.store).not.toBe(segments[i - 1]!.store);
        }
        for (const s of segments.filter((x) => x.store)) {
          expect(s.start % UNIT_BYTES).toBe(0);
          expect(s.end - s.start).toBeGreaterThan((MIN_STORED_UNITS - 1) * UNIT_BYTES);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("stores random units up to the end of a block that is not a whole number of units", () => {
    const n = MIN_STORED_UNITS;
    const block = Buffer.concat([text(2 * UNIT_BYTES, 1), random(n * UNIT_BYTES + 3000, 2)]);
    expect(planSegments(block)).toEqual([
      { store: false, start: 0, end: 2 * UNIT_BYTES },
      { store: true, start: 2 * UNIT_BYTES, end: block.length },
    ]);
    // A tail too short to judge goes to deflate.
    const short = Buffer.concat([text(2 * UNIT_BYTES, 1), random(n * UNIT_BYTES + 500, 2)]);
    expect(planSegments(short)).toEqual([
      { store: false, start: 0, end: 2 * UNIT_BYTES },
      { store: true, start: 2 * UNIT_BYTES, end: (2 + n) * UNIT_BYTES },
      { store: false, start: (2 + n) * UNIT_BYTES, end: short.length },
    ]);
  });

  it("deflates a short run of random units with its neighbours rather than splitting the block for it", () => {
    const short = MIN_STORED_UNITS - 1;
    const block = Buffer.concat([text(UNIT_BYTES, 1), random(short * UNIT_BYTES, 2), text(UNIT_BYTES, 3)]);
    expect(planSegments(block)).toEqual([{ store: false, start: 0, end: (short + 2) * UNIT_BYTES }]);
  });
});

describe("storedBlocks", () => {
  it.each([1, 4096, MAX_STORED_BLOCK, MAX_STORED_BLOCK + 1, 3 * MAX_STORED_BLOCK + 17])("frames %i bytes as stored blocks with LEN and its complement", (n) => {
    const data = random(n, n);
    const parts = storedBlocks(data);
    expect(parts).toHaveLength(2 * Math.ceil(n / MAX_STORED_BLOCK));
    let total = 0;
    for (let i = 0; i < parts.length; i += 2) {
      const [header, chunk] = [parts[i]!, parts[i + 1]!];
      expect(header[0]).toBe(0); // not final, stored
      const len = header[1]! | (header[2]! << 8);
      expect(len).toBe(chunk.length);
      expect((header[3]! | (header[4]! << 8)) ^ 0xffff).toBe(len);
      expect(chunk.buffer).toBe(data.buffer); // a view, not a copy
      total += len;
    }
    expect(total).toBe(n);
  });
});

describe("gzipMember", () => {
  it("decompresses to exactly the block with zlib, gunzip and DecompressionStream, for any mix and level", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 150_000 })), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(1, 6, 9),
        fc.integer(),
        async (pieces, level, seed) => {
          const block = Buffer.concat(pieces.map(([rnd, n], i) => (rnd ? random(n, seed + i) : text(n, seed + i))));
          const gz = concat(await gzipMember(block, level, codec));
          expect(Buffer.compare(gunzipSync(gz), block)).toBe(0);
          expect(Buffer.compare(await decompressWeb(gz), block)).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
    // The system's gunzip, on a mix with stored runs longer than one stored block.
    const block = Buffer.concat([text(50_000, 1), random(200_000, 2), text(9_000, 3), random(70_000, 4), text(123, 5)]);
    const gz = concat(await gzipMember(block, 6, codec));
    expect(Buffer.compare(execFileSync("gzip", ["-dc"], { input: gz }), block)).toBe(0);
  });

  it("stores random data: the member is the bytes plus exact framing, and never larger than zlib's", async () => {
    const block = random(1024 * 1024, 7);
    const parts = await gzipMember(block, 9, codec);
    const framing = 10 + 5 * Math.ceil(block.length / MAX_STORED_BLOCK) + 5 + 8;
    expect(concat(parts).length).toBe(block.length + framing);
    expect(concat(parts).length).toBeLessThanOrEqual(gzipSync(block, { level: 9 }).length);
    // The trailer: CRC-32 and length of the block.
    const trailer = parts.at(-1)!;
    expect(Buffer.from(trailer).readUInt32LE(0)).toBe(crc32(block));
    expect(Buffer.from(trailer).readUInt32LE(4)).toBe(block.length);
  });

  it("hands a block with nothing to store to zlib whole, in one call", async () => {
    const before = { ...calls };
    const block = text(300_000, 9);
    const parts = await gzipMember(block, 6, codec);
    expect(parts).toHaveLength(1);
    expect(calls.gzip - before.gzip).toBe(1);
    expect(calls.deflateRaw - before.deflateRaw).toBe(0);
    expect(Buffer.compare(parts[0]!, gzipSync(block, { level: 6 }))).toBe(0);
  });

  it("an empty block is a valid empty member", async () => {
    expect(gunzipSync(concat(await gzipMember(new Uint8Array(0), 6, codec))).length).toBe(0);
  });

  it("a database of random blobs comes back exactly and stores the blobs", async () => {
    const db = await makeDatabase({ rows: 300, targetBytes: 2 * 1024 * 1024 });
    const gz = concat(await gzipMember(db, 6, codec));
    expect(Buffer.compare(gunzipSync(gz), db)).toBe(0);
    const stored = planSegments(db)
      .filter((s) => s.store)
      .reduce((n, s) => n + s.end - s.start, 0);
    // 32 blobs of 64 KiB of randomblob(): their overflow pages are stored.
    expect(stored).toBeGreaterThan(1.5 * 1024 * 1024);
  });
});
