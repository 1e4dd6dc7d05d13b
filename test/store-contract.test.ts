/**
 * The BackupStore contract, run against both stores: the S3 API store on the in-process S3
 * server (test/helpers/s3.ts) and the R2 binding store on Miniflare's R2 (the implementation
 * workerd's bindings use, reached from Node through Miniflare). Same calls, same
 * expectations: what the pipeline relies on (metadata, multipart, copy, the lease's
 * conditional put, nothing left after a failure) holds for both. Then what only the R2 store
 * does: ranged reads, refusing to presign, and finding the upload of a run that died.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_MAX_BYTES } from "../functions/node-runtime.js";
import { parseConfig } from "../src/config.js";
import { createLock } from "../src/lock.js";
import { jsonLogger } from "../src/log.js";
import { createR2Store, UPLOAD_MARKER_SUFFIX, type R2BucketLike, type R2MultipartUploadLike } from "../src/store/r2.js";
import { createS3Store } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { backupError } from "./helpers/errors.js";
import { capturedLines } from "./helpers/log-capture.js";
import { r2Keys, startTestR2, uploadsInProgress, type TestR2 } from "./helpers/r2.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

const MiB = 1024 * 1024;

interface Subject {
  store: BackupStore;
  keys(prefix: string): Promise<string[]>;
  /** Keys of multipart uploads the server still has in progress. */
  uploads(prefix: string): Promise<string[]>;
}

let s3: TestStore;
let r2: TestR2;
let bucket: R2BucketLike;
const subjects: Record<"s3" | "r2", () => Subject> = {
  s3: () => ({
    store: createS3Store(parseConfig(s3.env({ BACKUP_SOURCE: "/nowhere.db" }), { maxBytes: NODE_MAX_BYTES }).s3, { queueSize: 2 }),
    keys: (prefix) => s3.keys(prefix),
    uploads: async (prefix) => (await s3.uploads(prefix)).map((u) => u.split("#")[0]!),
  }),
  r2: () => ({
    store: createR2Store(bucket, "BACKUPS"),
    keys: (prefix) => r2Keys(bucket, prefix),
    uploads: async (prefix) => uploadsInProgress(r2.persist).map((u) => u.key).filter((k) => k.startsWith(prefix)),
  }),
};

beforeAll(async () => {
  [s3, r2] = await Promise.all([startTestStore(), startTestR2(["BACKUPS"])]);
  bucket = await r2.bucket("BACKUPS");
});
afterAll(async () => {
  await Promise.allSettled([s3?.close(), r2?.close()]);
});

function streamOf(bytes: Uint8Array, chunk = 64 * 1024, failAfter?: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (failAfter !== undefined && at >= failAfter) return controller.error(new Error("the source broke off"));
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
  });
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const options = (metadata: Record<string, string>) => ({ metadata, contentType: "application/gzip", contentDisposition: 'attachment; filename="x.sqlite.gz"' });

for (const kind of ["s3", "r2"] as const) {
  describe(`the ${kind} store`, () => {
    let s: Subject;
    const prefix = `contract-${kind}/`;
    beforeAll(() => {
      s = subjects[kind]();
    });

    it("a small upload (one request) keeps its bytes, size, metadata and content type", async () => {
      const body = randomBytes(100_000);
      await s.store.upload(`${prefix}small.gz`, streamOf(body), options({ sha256: "abc", bytes: "100000", format: "sqlite3+gzip" }));
      const head = await s.store.head(`${prefix}small.gz`);
      expect(head).toMatchObject({ key: `${prefix}small.gz`, size: body.length, metadata: { sha256: "abc", bytes: "100000", format: "sqlite3+gzip" }, contentType: "application/gzip" });
      expect(head!.lastModified.getTime()).toBeGreaterThan(Date.now() - 600_000);
      expect(Buffer.from(await bytesOf(await s.store.get(`${prefix}small.gz`))).equals(body)).toBe(true);
      expect((await s.store.list(prefix)).map((o) => [o.key, o.size])).toEqual([[`${prefix}small.gz`, body.length]]);
    });

    it("a 12 MiB upload goes in equal 5 MiB parts and a last one; progress reaches the total; the bytes read back equal", async () => {
      const body = randomBytes(12 * MiB + 12345);
      const progress: number[] = [];
      await s.store.upload(`${prefix}big.gz`, streamOf(body), { ...options({ sha256: "big" }), onProgress: (n) => progress.push(n) });
      expect((await s.store.head(`${prefix}big.gz`))?.size).toBe(body.length);
      expect(Buffer.from(await bytesOf(await s.store.get(`${prefix}big.gz`))).equals(body)).toBe(true);
      expect(progress.at(-1)).toBe(body.length);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      expect(await s.uploads(prefix)).toEqual([]);
    });

    it("copy gives the copy new metadata and the same bytes (small and multipart sizes); the original stays", async () => {
      for (const name of ["small", "big"]) {
        const from = `${prefix}${name}.gz`;
        const size = (await s.store.head(from))!.size;
        await s.store.copy(from, `${prefix}${name}-copy.gz`, size, options({ sha256: `final-${name}`, format: "sqlite3+gzip" }));
        const head = await s.store.head(`${prefix}${name}-copy.gz`);
        expect(head).toMatchObject({ size, metadata: { sha256: `final-${name}`, format: "sqlite3+gzip" }, contentType: "application/gzip" });
        const [a, b] = await Promise.all([bytesOf(await s.store.get(from)), bytesOf(await s.store.get(`${prefix}${name}-copy.gz`))]);
        expect(Buffer.from(a).equals(b)).toBe(true);
      }
      expect(await s.uploads(prefix)).toEqual([]);
    });

    it("delete removes exactly the keys given; head of a missing key is undefined", async () => {
      const r = await s.store.delete([`${prefix}small-copy.gz`, `${prefix}big-copy.gz`]);
      expect(r).toEqual({ deleted: [`${prefix}small-copy.gz`, `${prefix}big-copy.gz`], failed: [] });
      expect(await s.store.head(`${prefix}small-copy.gz`)).toBeUndefined();
      expect(await s.keys(prefix)).toEqual([`${prefix}big.gz`, `${prefix}small.gz`]);
    });

    it("a body that fails after two parts were sent: UPLOAD_FAILED, no object, no upload in progress, no marker", async () => {
      const body = randomBytes(13 * MiB);
      const before = await s.keys(prefix);
      const e = await backupError(s.store.upload(`${prefix}broken.gz`, streamOf(body, 64 * 1024, 11 * MiB), options({})));
      expect(e.code).toBe("UPLOAD_FAILED");
      expect(e.message).toContain("the source broke off");
      expect(await s.store.head(`${prefix}broken.gz`)).toBeUndefined();
      expect(await s.uploads(prefix)).toEqual([]);
      expect(await s.store.listUploads(prefix)).toEqual([]);
      expect(await s.keys(prefix)).toEqual(before);
    });

    it("putSmall with ifAbsent writes once and then answers false; getSmall reads it, and undefined for nothing", async () => {
      if (kind === "s3" && s3.external) {
        // The integration run's Swift refuses conditional writes (501): the store says so.
        expect((await backupError(s.store.putSmall(`${prefix}.lock`, "first", { contentType: "application/json", ifAbsent: true }))).code).toBe("CONDITIONAL_WRITE_UNSUPPORTED");
        expect(await s.store.putSmall(`${prefix}.lock`, "first", { contentType: "application/json" })).toBe(true);
      } else {
        expect(await s.store.putSmall(`${prefix}.lock`, "first", { contentType: "application/json", ifAbsent: true })).toBe(true);
        expect(await s.store.putSmall(`${prefix}.lock`, "second", { contentType: "application/json", ifAbsent: true })).toBe(false);
      }
      expect(await s.store.getSmall(`${prefix}.lock`)).toBe("first");
      expect(await s.store.putSmall(`${prefix}.lock`, "third", { contentType: "application/json" })).toBe(true);
      expect(await s.store.getSmall(`${prefix}.lock`)).toBe("third");
      expect(await s.store.getSmall(`${prefix}nothing`)).toBeUndefined();
      await s.store.delete([`${prefix}.lock`]);
    });

    it("the lease finds whether conditional writes work (LOCK=auto) and leaves nothing", async () => {
      const lines = capturedLines(`${kind} lock`);
      const logger = jsonLogger({ write: (line) => lines.push(line) });
      const lock = createLock({ store: s.store, prefix, name: "leased", mode: "auto", ttlMs: 30_000, settleMs: 50, owner: "a", holder: "test", now: () => new Date(), logger });
      const held = await lock.acquire();
      // Swift (the integration run's S3_TEST_*) answers 501 to If-None-Match: the best-effort way.
      expect(lock.mode()).toBe(kind === "s3" && s3.external ? "best-effort" : "conditional");
      await held.release();
      expect((await s.keys(`${prefix}leased/`)).filter((k) => k.includes(".lock"))).toEqual([]);
    });

    it(`canPresign is ${kind === "s3"}, and presign ${kind === "s3" ? "signs a link" : "refuses with 501 PRESIGN_UNSUPPORTED naming LINK_MODE=worker"}`, async () => {
      expect(s.store.canPresign).toBe(kind === "s3");
      if (kind === "s3") {
        expect(await s.store.presign(`${prefix}small.gz`, 60, "small.gz")).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/);
      } else {
        const e = await backupError(s.store.presign(`${prefix}small.gz`, 60, "small.gz"));
        expect([e.code, e.status]).toEqual(["PRESIGN_UNSUPPORTED", 501]);
        expect(e.message).toContain("LINK_MODE=worker");
      }
    });
  });
}

describe("the r2 store only", () => {
  const prefix = "r2-only/";

  it("get with a range reads only those bytes (R2's own ranged read)", async () => {
    const body = randomBytes(300_000);
    const store = createR2Store(bucket, "BACKUPS");
    await store.upload(`${prefix}ranged.gz`, streamOf(body), options({}));
    const get = store.get as (key: string, range?: { offset: number; length?: number }) => Promise<ReadableStream<Uint8Array>>;
    expect(Buffer.from(await bytesOf(await get(`${prefix}ranged.gz`, { offset: 1000, length: 5000 }))).equals(body.subarray(1000, 6000))).toBe(true);
    expect(Buffer.from(await bytesOf(await get(`${prefix}ranged.gz`, { offset: 299_990 }))).equals(body.subarray(299_990))).toBe(true);
  });

  it("an upload whose run died before aborting it (abort and deletes never happened) is found by listUploads and aborted by abortUploads", async () => {
    // The binding as it behaves in an isolate that is killed at the failure: the calls that
    // clean up never reach R2. Everything else is Miniflare's R2 itself.
    const dying: R2BucketLike = {
      head: (k) => bucket.head(k),
      get: (k, o) => bucket.get(k, o),
      put: (k, v, o) => bucket.put(k, v, o),
      list: (o) => bucket.list(o),
      delete: async () => {
        throw new Error("isolate gone");
      },
      createMultipartUpload: async (k, o) => dyingUpload(await bucket.createMultipartUpload(k, o)),
      resumeMultipartUpload: (k, id) => dyingUpload(bucket.resumeMultipartUpload(k, id)),
    };
    function dyingUpload(u: R2MultipartUploadLike): R2MultipartUploadLike {
      return {
        key: u.key,
        uploadId: u.uploadId,
        uploadPart: (n, v) => u.uploadPart(n, v),
        complete: (p) => u.complete(p),
        abort: async () => {
          throw new Error("isolate gone");
        },
      };
    }
    const key = `${prefix}db/db-2026-12-06T03-00-00-000Z-abcdef.sqlite.gz`;
    await backupError(createR2Store(dying, "BACKUPS").upload(key, streamOf(randomBytes(12 * MiB), 64 * 1024, 11 * MiB), options({})));
    expect(uploadsInProgress(r2.persist).map((u) => u.key)).toEqual([key]);
    expect(await r2Keys(bucket, prefix + "db/")).toEqual([key + UPLOAD_MARKER_SUFFIX]);

    // The next run's cleanup, with a working binding.
    const store = createR2Store(bucket, "BACKUPS");
    const pending = await store.listUploads(prefix);
    expect(pending.map((u) => [u.key, u.uploadId])).toEqual([[key, uploadsInProgress(r2.persist)[0]!.uploadId]]);
    expect(pending[0]!.initiated.getTime()).toBeGreaterThan(Date.now() - 600_000);
    expect(await store.abortUploads(key)).toBe(1);
    expect(uploadsInProgress(r2.persist)).toEqual([]);
    expect(await r2Keys(bucket, prefix + "db/")).toEqual([]);
    expect(await store.listUploads(prefix)).toEqual([]);
  });
});
