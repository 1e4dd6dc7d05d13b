/**
 * The r2:// source on Miniflare's R2 (reached from Node): the bytes stream exactly; a body
 * that breaks off continues with a ranged read pinned to the etag; an object replaced in
 * between is a SourceChanged; a missing object, a non-database and MAX_BYTES are named.
 * The only thing not real is the break itself: the first body is cut after N bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { r2Source } from "../../src/sources/r2.js";
import { SourceChanged } from "../../src/sources/source.js";
import type { R2BucketLike, R2ObjectBodyLike } from "../../src/store/r2.js";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { backupError } from "../helpers/errors.js";
import { startTestR2, type TestR2 } from "../helpers/r2.js";

const MiB = 1024 * 1024;
let r2: TestR2;
let bucket: R2BucketLike;
let db: Uint8Array;

beforeAll(async () => {
  [r2, db] = await Promise.all([startTestR2(["DATA"]), makeDatabase({ rows: 2000, targetBytes: 2 * MiB })]);
  bucket = await r2.bucket("DATA");
});
afterAll(() => r2?.close());

/** `body`, failing like a reset connection once `after` bytes have been delivered. */
function breaking(body: ReadableStream<Uint8Array>, after: number): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent >= after) {
        await reader.cancel().catch(() => undefined);
        return controller.error(new Error("connection reset"));
      }
      const { done, value } = await reader.read();
      if (done) return controller.close();
      const take = value.subarray(0, Math.min(value.length, after - sent));
      sent += take.length;
      controller.enqueue(take);
    },
  });
}

/** The bucket, with the first whole-object read cut after `after` bytes; `between` runs at the cut. */
function cutOnce(after: number, between?: () => Promise<void>): { bucket: R2BucketLike; ranges: unknown[] } {
  let cut = false;
  const ranges: unknown[] = [];
  return {
    ranges,
    bucket: {
      head: (k) => bucket.head(k),
      put: (k, v, o) => bucket.put(k, v, o),
      list: (o) => bucket.list(o),
      delete: (k) => bucket.delete(k),
      createMultipartUpload: (k, o) => bucket.createMultipartUpload(k, o),
      resumeMultipartUpload: (k, id) => bucket.resumeMultipartUpload(k, id),
      async get(key, options) {
        if (options) ranges.push(options);
        const object = await bucket.get(key, options);
        if (cut || options || !object || !("body" in object)) return object;
        cut = true;
        const body = breaking(object.body, after);
        const cutAt = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const reader = body.getReader();
            for (;;) {
              try {
                const r = await reader.read();
                if (r.done) return controller.close();
                controller.enqueue(r.value);
              } catch (err) {
                await between?.();
                return controller.error(err);
              }
            }
          },
        });
        return { key: object.key, size: object.size, etag: object.etag, uploaded: object.uploaded, body: cutAt } satisfies R2ObjectBodyLike;
      },
    },
  };
}

async function all(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

describe("r2:// source", () => {
  it("open streams exactly the object, with its size up front; read gives the same bytes", async () => {
    await bucket.put("app.db", db);
    const source = r2Source(bucket, "DATA", "app.db");
    expect(source.origin).toBe("r2://DATA/app.db");
    const opened = await source.open({ maxBytes: 64 * MiB });
    expect(opened.bytes).toBe(db.length);
    expect(sha256(await all(opened.stream))).toBe(sha256(db));
    expect(sha256((await source.read({ maxBytes: 64 * MiB })).bytes)).toBe(sha256(db));
  });

  it("a body that breaks off after 1 MiB continues with a ranged read pinned to the etag", async () => {
    const { bucket: cutting, ranges } = cutOnce(MiB);
    const opened = await r2Source(cutting, "DATA", "app.db").open({ maxBytes: 64 * MiB });
    expect(sha256(await all(opened.stream))).toBe(sha256(db));
    const etag = (await bucket.head("app.db"))!.etag;
    expect(ranges).toEqual([{ onlyIf: { etagMatches: etag }, range: { offset: MiB, length: db.length - MiB } }]);
  });

  it("an object replaced while it was read is a SourceChanged (the backup reads it again)", async () => {
    const other = await makeDatabase({ rows: 2100, targetBytes: 2 * MiB });
    const { bucket: cutting } = cutOnce(MiB, async () => {
      await bucket.put("app.db", other);
    });
    const opened = await r2Source(cutting, "DATA", "app.db").open({ maxBytes: 64 * MiB });
    const err = await all(opened.stream).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SourceChanged);
    expect((err as SourceChanged).reason).toMatch(/was replaced while it was read/);
  });

  it("a missing object → SOURCE_NOT_FOUND naming the r2:// source and the binding", async () => {
    const e = await backupError(r2Source(bucket, "DATA", "nope.db").open({ maxBytes: MiB }));
    expect(e.code).toBe("SOURCE_NOT_FOUND");
    expect(e.message).toContain("r2://DATA/nope.db does not exist");
  });

  it("over MAX_BYTES → SOURCE_TOO_LARGE before reading; not a database → NOT_SQLITE", async () => {
    const large = await backupError(r2Source(bucket, "DATA", "app.db").read({ maxBytes: 1024 }));
    expect(large.code).toBe("SOURCE_TOO_LARGE");
    await bucket.put("notes.txt", new TextEncoder().encode("these are not the pages you are looking for"));
    const text = await backupError(r2Source(bucket, "DATA", "notes.txt").read({ maxBytes: MiB }));
    expect(text.code).toBe("NOT_SQLITE");
  });
});
