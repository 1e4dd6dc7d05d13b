/**
 * The cron trigger in workerd: scheduled() backs up the source served over HTTP to the real
 * S3 server; the signed link the API hands out downloads, with Node's fetch and node:zlib,
 * exactly the source database. A failed run is reported as failed and leaves nothing behind.
 */
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { CRON, download, expectSameDatabase, KEY_PATTERN, serve, WorkerHarness, type TestWorker } from "./harness.js";

const MiB = 1024 * 1024;
const h = new WorkerHarness();
let w: TestWorker;
let small: Uint8Array;
let large: Uint8Array;
const keys: string[] = [];

beforeAll(async () => {
  [, small, large] = await Promise.all([
    h.start(),
    makeDatabase({ rows: 3000, targetBytes: 3 * MiB }),
    // Random blobs: the gzip output stays > 5 MiB, so the upload is multipart.
    makeDatabase({ rows: 200, targetBytes: 13 * MiB }),
  ]);
  w = await h.worker("cron");
});
afterAll(() => h.close());

async function latestLink(): Promise<{ url: string; key: string; size: number; expiresAt: string }> {
  const a = await w.call("/backups/latest/link", { headers: h.auth() });
  expect(a.status, a.text).toBe(200);
  return a.json;
}

describe("scheduled()", () => {
  it(`backs up a ${(3).toFixed(0)} MiB database; the signed link downloads exactly it`, async () => {
    h.source.set(w.sourcePath, serve.db(small));
    const result = await w.scheduled();
    expect(result.outcome).toBe("ok");

    const stored = await h.s3.keys(w.prefix);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatch(KEY_PATTERN(w.prefix, "cron"));
    keys.push(stored[0]!);

    const link = await latestLink();
    expect(link.key).toBe(stored[0]);
    const { gzip, bytes } = await download(link.url);
    expect(link.size).toBe(gzip.length);
    await expectSameDatabase(bytes, small);
    expect(await h.s3.uploads(w.prefix)).toEqual([]);
  });

  it("backs up a ≥ 12 MiB database of incompressible blobs as a multipart upload; the link downloads exactly it", async () => {
    expect(large.length).toBeGreaterThanOrEqual(12 * MiB);
    h.source.set(w.sourcePath, serve.db(large));
    const result = await w.scheduled();
    expect(result.outcome).toBe("ok");

    const stored = await h.s3.keys(w.prefix);
    expect(stored).toHaveLength(2);
    const key = stored.find((k) => !keys.includes(k))!;
    keys.push(key);

    const link = await latestLink();
    expect(link.key).toBe(key); // the newer one
    const { gzip, bytes } = await download(link.url);
    expect(gzip.length).toBeGreaterThan(5 * MiB);
    expect(link.size).toBe(gzip.length);
    await expectSameDatabase(bytes, large);

    const head = await h.s3.client.send(new HeadObjectCommand({ Bucket: h.s3.bucket, Key: key }));
    expect(head.Metadata).toMatchObject({ sha256: sha256(large), bytes: String(large.length), format: "sqlite3+gzip" });
    // A real server gives multipart objects an ETag "<md5 of part md5s>-<parts>"; s3rver does not.
    if (h.s3.external) expect(head.ETag).toMatch(/-[2-9]"?$/);
    expect(await h.s3.uploads(w.prefix)).toEqual([]);
  });

  it("logs the JSON 'backup finished' and 'scheduled backup done' lines", async () => {
    const finished = await h.waitForLog((l) => l.msg === "backup finished" && l.bytes === large.length, "cron");
    expect(finished).toMatchObject({ level: "info", bytes: large.length });
    expect(finished.gzipBytes).toBeGreaterThan(5 * MiB);
    const done = await h.waitForLog((l) => l.msg === "scheduled backup done" && l.key === keys[1], "cron");
    expect(done).toMatchObject({ cron: "0 3 * * *", bytes: large.length });
  });

  it("a run whose source answers 500 is reported as failed, and nothing is uploaded", async () => {
    const before = await h.s3.keys();
    h.source.set(w.sourcePath, serve.status(500, "internal error"));
    const result = await w.scheduled();
    expect(result.outcome).not.toBe("ok");
    expect(result.outcome).toBe("exception");

    expect(await h.s3.keys()).toEqual(before);
    expect(await h.s3.uploads()).toEqual([]);

    const status = await w.call("/status", { headers: h.auth() });
    expect(status.status).toBe(200);
    expect(status.json).toMatchObject({ name: "cron", running: false, lastRun: { ok: false, error: { code: "SOURCE_UNREADABLE" } } });
    expect(status.json.lastRun.error.message).toContain("HTTP 500");
    const failed = await h.waitForLog((l) => l.msg === "backup failed", "cron");
    expect(failed).toMatchObject({ level: "error", code: "SOURCE_UNREADABLE" });

    // The previous backups are untouched and the next run works again.
    h.source.set(w.sourcePath, serve.db(small));
    expect((await w.scheduled()).outcome).toBe("ok");
    expect(await h.s3.keys(w.prefix)).toHaveLength(3);
  });

  it("a trigger whose window an earlier run already covered (an overlapping instance) uploads nothing", async () => {
    const before = await h.s3.keys(w.prefix);
    expect(before.length).toBeGreaterThan(0);
    // A window that started a minute ago: the backups above were taken after it began.
    const result = await w.scheduled(CRON, new Date(Date.now() - 60_000));
    expect(result.outcome).toBe("ok");
    expect(await h.s3.keys(w.prefix)).toEqual(before);
    const skipped = await h.waitForLog((l) => l.msg === "scheduled backup skipped", "cron");
    expect(String(skipped.reason)).toContain("exists already");
    // No lease is left behind either: the lock object is deleted when a run ends.
    expect((await h.s3.keys(w.prefix)).filter((k) => k.includes("/.lock"))).toEqual([]);
  });

  it("neither the API key nor the S3 secret appears in any response or workerd log line", () => {
    expect(h.logs.length).toBeGreaterThan(5);
    h.assertNoSecrets();
  });
});
