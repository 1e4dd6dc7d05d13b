/**
 * The R2 binding as the store (R2_BUCKET) and as a source (r2://BINDING/key) in workerd, with
 * Miniflare's R2 behind the bindings (multipart with R2's equal-part rule, conditional puts).
 * No S3_* at all: the cron trigger backs up a database from one bound bucket into another,
 * lists, verifies (VERIFY=full reads the backup back through the binding), prunes, and the
 * stored backup gunzips to exactly the source. A failure after parts were sent leaves no
 * object and no multipart upload in progress (Miniflare's own records). Configuration errors
 * name R2_BUCKET; links are refused with 501 until LINK_MODE=worker exists.
 */
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UPLOAD_MARKER_SUFFIX, type R2BucketLike } from "../../src/store/r2.js";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { multipartUploads, r2Keys, uploadsInProgress } from "../helpers/r2.js";
import { expectSameDatabase, KEY_PATTERN, serve, WorkerHarness, type TestWorker } from "./harness.js";

const MiB = 1024 * 1024;
const h = new WorkerHarness();
const NO_S3 = { S3_ENDPOINT: null, S3_BUCKET: null, S3_ACCESS_KEY_ID: null, S3_SECRET_ACCESS_KEY: null, S3_REGION: null };
let small: Uint8Array;
let large: Uint8Array;

beforeAll(async () => {
  [, small, large] = await Promise.all([
    h.start(),
    makeDatabase({ rows: 3000, targetBytes: 3 * MiB }),
    // Random blobs: the gzip output stays > 5 MiB, so the upload is multipart.
    makeDatabase({ rows: 200, targetBytes: 13 * MiB }),
  ]);
});
afterAll(() => h.close());

async function stored(bucket: R2BucketLike, key: string): Promise<{ gzip: Uint8Array; bytes: Uint8Array; metadata: Record<string, string> }> {
  const object = await bucket.get(key);
  expect(object && "body" in object, key).toBe(true);
  const gzip = new Uint8Array(await new Response((object as { body: ReadableStream }).body).arrayBuffer());
  return { gzip, bytes: new Uint8Array(gunzipSync(gzip)), metadata: object!.customMetadata ?? {} };
}

describe("R2_BUCKET store, r2:// source, cron", () => {
  let w: TestWorker;
  let backups: R2BucketLike;
  let sources: R2BucketLike;
  const kept: string[] = [];

  beforeAll(async () => {
    w = await h.worker("r2cron", { r2Buckets: ["BACKUPS", "SOURCES"], env: { ...NO_S3, R2_BUCKET: "BACKUPS", BACKUP_SOURCE: "r2://SOURCES/data/app.db", MAX_COUNT: "2", VERIFY: "full" } });
    [backups, sources] = await Promise.all([w.r2("BACKUPS"), w.r2("SOURCES")]);
  });

  it("backs up a 3 MiB database from the SOURCES binding into the BACKUPS binding; the object gunzips to exactly it", async () => {
    await sources.put("data/app.db", small);
    const result = await w.scheduled();
    expect(result.outcome).toBe("ok");
    const keys = await r2Keys(backups, w.prefix);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(KEY_PATTERN(w.prefix, "r2cron"));
    kept.push(keys[0]!);
    const { bytes, metadata } = await stored(backups, keys[0]!);
    await expectSameDatabase(bytes, small);
    expect(metadata).toMatchObject({ sha256: sha256(small), bytes: String(small.length), format: "sqlite3+gzip" });
    const done = await h.waitForLog((l) => l.msg === "scheduled backup done" && l.key === keys[0], "r2cron");
    expect(done).toMatchObject({ bytes: small.length });
  });

  it("a 13 MiB database of incompressible blobs goes up in R2 multipart parts and is verified by reading it back", async () => {
    await sources.put("data/app.db", large);
    expect((await w.scheduled()).outcome).toBe("ok");
    const keys = await r2Keys(backups, w.prefix);
    expect(keys).toHaveLength(2);
    const key = keys.find((k) => !kept.includes(k))!;
    kept.push(key);
    const { gzip, bytes, metadata } = await stored(backups, key);
    expect(gzip.length).toBeGreaterThan(5 * MiB);
    await expectSameDatabase(bytes, large);
    expect(metadata).toMatchObject({ sha256: sha256(large), bytes: String(large.length) });
    await h.waitForLog((l) => l.msg === "verified" && l.key === key && l.verify === "full", "r2cron");
    expect(uploadsInProgress(join(h.r2Persist(), "r2cron"))).toEqual([]);
  });

  it("GET /backups lists both through the binding, newest first, with their sizes", async () => {
    const a = await w.call("/backups", { headers: h.auth() });
    expect(a.status, a.text).toBe(200);
    const listed = (a.json.backups as { key: string; size: number }[]).map((b) => b.key);
    expect(listed).toEqual([...kept].reverse());
  });

  it("a third run prunes to MAX_COUNT=2 (the oldest goes); no lease, marker or .partial is left", async () => {
    await sources.put("data/app.db", small);
    expect((await w.scheduled()).outcome).toBe("ok");
    const keys = await r2Keys(backups, w.prefix);
    expect(keys).toHaveLength(2);
    expect(keys).not.toContain(kept[0]);
    expect(keys).toContain(kept[1]);
    expect(keys.every((k) => KEY_PATTERN(w.prefix, "r2cron").test(k))).toBe(true);
    expect(await r2Keys(backups)).toEqual(keys);
    // The lease went the conditional way (R2's onlyIf put) and was released.
    const lease = await h.waitForLog((l) => l.msg === "lease taken", "r2cron");
    expect(lease.mode).toBe("conditional");
  });

  it("a link is refused with 501 PRESIGN_UNSUPPORTED naming LINK_MODE=worker", async () => {
    const a = await w.call("/backups/latest/link", { headers: h.auth() });
    expect(a.status, a.text).toBe(501);
    expect(a.json.error.code).toBe("PRESIGN_UNSUPPORTED");
    expect(a.json.error.message).toContain("LINK_MODE=worker");
  });

  it("a source object that does not exist → the run fails with SOURCE_NOT_FOUND naming the r2:// source; nothing stored", async () => {
    await sources.delete("data/app.db");
    const before = await r2Keys(backups);
    expect((await w.scheduled()).outcome).toBe("exception");
    const status = await w.call("/status", { headers: h.auth() });
    expect(status.json.lastRun).toMatchObject({ ok: false, error: { code: "SOURCE_NOT_FOUND" } });
    expect(status.json.lastRun.error.message).toContain("r2://SOURCES/data/app.db");
    expect(await r2Keys(backups)).toEqual(before);
  });
});

describe("R2_BUCKET store, r2:// source streamed (CHECK=structure): .partial, then the copy through the Worker", () => {
  it("a 13 MiB database streams from SOURCES, is copied to its key with the final metadata, and gunzips to exactly it", async () => {
    const w = await h.worker("r2stream", { r2Buckets: ["BACKUPS", "SOURCES"], env: { ...NO_S3, R2_BUCKET: "BACKUPS", BACKUP_SOURCE: "r2://SOURCES/app.db", CHECK: "structure" } });
    const [backups, sources] = await Promise.all([w.r2("BACKUPS"), w.r2("SOURCES")]);
    await sources.put("app.db", large);
    expect((await w.scheduled()).outcome).toBe("ok");
    await h.waitForLog((l) => l.msg === "streaming the image", "r2stream");
    const keys = await r2Keys(backups);
    expect(keys).toHaveLength(1);
    const { bytes, metadata } = await stored(backups, keys[0]!);
    await expectSameDatabase(bytes, large);
    expect(metadata).toMatchObject({ sha256: sha256(large), bytes: String(large.length), format: "sqlite3+gzip" });
    expect(uploadsInProgress(join(h.r2Persist(), "r2stream"))).toEqual([]);
  });
});

describe("R2_BUCKET store, URL source (streamed: upload to .partial, then the copy through the Worker)", () => {
  let w: TestWorker;
  let backups: R2BucketLike;

  beforeAll(async () => {
    w = await h.worker("r2url", { r2Buckets: ["BACKUPS"], env: { ...NO_S3, R2_BUCKET: "BACKUPS", CHECK: "structure" } });
    backups = await w.r2("BACKUPS");
  });

  it("a source that breaks off after parts were sent: the run fails, no object, no upload in progress, no marker", async () => {
    // Half of 13 MiB of incompressible pages: at least one 5 MiB part is sent before the break.
    h.source.set(w.sourcePath, serve.short(large));
    const a = await w.backup();
    expect(a.status, a.text).toBe(502);
    expect(a.json.error.code).toBe("SOURCE_UNREADABLE");
    expect(await r2Keys(backups)).toEqual([]);
    // The multipart upload had started (a full 5 MiB part was cut) and was aborted.
    const uploads = multipartUploads(join(h.r2Persist(), "r2url"));
    expect(uploads).toHaveLength(1);
    expect(uploads[0]).toMatchObject({ state: "aborted" });
    expect(uploads[0]!.key).toMatch(/\.sqlite\.gz\.partial$/);
  });

  it("the whole database then backs up: copied to its key with the final metadata; no .partial or marker left", async () => {
    h.source.set(w.sourcePath, serve.chunked(large));
    const a = await w.backup();
    expect(a.status, a.text).toBe(201);
    const keys = await r2Keys(backups);
    expect(keys).toEqual([a.json.key]);
    expect(keys.some((k) => k.endsWith(".partial") || k.endsWith(UPLOAD_MARKER_SUFFIX))).toBe(false);
    const { bytes, metadata } = await stored(backups, a.json.key);
    await expectSameDatabase(bytes, large);
    expect(metadata).toMatchObject({ sha256: sha256(large), bytes: String(large.length), format: "sqlite3+gzip" });
    expect(uploadsInProgress(join(h.r2Persist(), "r2url"))).toEqual([]);
  });
});

describe("R2 configuration errors", () => {
  it("R2_BUCKET naming no binding → 500 CONFIG_INVALID naming R2_BUCKET and the missing binding", async () => {
    const w = await h.worker("r2missing", { r2Buckets: ["BACKUPS"], env: { ...NO_S3, R2_BUCKET: "BAKUPS" } });
    const a = await w.call("/status", { headers: h.auth() });
    expect(a.status, a.text).toBe(500);
    expect(a.json.error.code).toBe("CONFIG_INVALID");
    expect(a.json.error.message).toMatch(/R2_BUCKET names the R2 binding BAKUPS, but the Worker has none/);
    expect((await w.scheduled()).outcome).toBe("exception");
  });

  it("R2_BUCKET naming a plain variable → CONFIG_INVALID saying it is not an R2 binding, without its value", async () => {
    const w = await h.worker("r2notbucket", { env: { ...NO_S3, R2_BUCKET: "API_KEY" } });
    const a = await w.call("/status", { headers: h.auth() });
    expect(a.status, a.text).toBe(500);
    expect(a.json.error.message).toMatch(/R2_BUCKET names API_KEY, which is a variable, not an R2 bucket binding/);
    expect(a.text).not.toContain(h.apiKey);
  });

  it("an r2:// source naming no binding → CONFIG_INVALID naming BACKUP_SOURCE", async () => {
    const w = await h.worker("r2nosrc", { r2Buckets: ["BACKUPS"], env: { ...NO_S3, R2_BUCKET: "BACKUPS", BACKUP_SOURCE: "r2://NOPE/app.db" } });
    const a = await w.call("/status", { headers: h.auth() });
    expect(a.status, a.text).toBe(500);
    expect(a.json.error.message).toMatch(/BACKUP_SOURCE names the R2 binding NOPE/);
  });

  it("neither the API key nor a secret appears in any response or workerd log line", () => {
    h.assertNoSecrets();
  });
});
