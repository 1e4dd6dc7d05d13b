/**
 * CHECK=structure in workerd: the b-tree checks in TypeScript over the image's pages, without
 * opening it in sql.js. A sound database is backed up (POST /backups and the cron trigger); a
 * damaged one, which SQLite's quick_check rejects too, is refused with 422 SQLITE_CORRUPT, and
 * nothing reaches the bucket — no object, no multipart upload.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { corruptTableLeaf, makeDatabase, quickCheck, sha256 } from "../helpers/db.js";
import { expectErrorShape } from "../api/harness.js";
import { download, expectSameDatabase, serve, WorkerHarness, type TestWorker } from "./harness.js";

const MiB = 1024 * 1024;
const h = new WorkerHarness();
let w: TestWorker;
let sound: Uint8Array;
let damaged: Uint8Array;
let good: Manifest;

beforeAll(async () => {
  [, sound, damaged] = await Promise.all([h.start(), makeDatabase({ rows: 1000, targetBytes: 1 * MiB }), makeDatabase({ rows: 3000, targetBytes: 1 * MiB }).then((db) => corruptTableLeaf(db))]);
  w = await h.worker("structure", { env: { CHECK: "structure" } });
});
afterAll(() => h.close());

describe("CHECK=structure in the Worker", () => {
  it("POST /backups backs up a sound database; the link downloads exactly it", async () => {
    h.source.set(w.sourcePath, serve.db(sound));
    const a = await w.backup();
    expect(a.status, a.text).toBe(201);
    good = a.json as Manifest;
    expect(good.sha256).toBe(sha256(sound));
    expect(good.pageSize).toBe(4096);
    expect(good.pageCount).toBe(sound.length / 4096);
    expect(good.sqliteVersion).toMatch(/^3\.\d+\.\d+$/);
    const link = await w.call("/backups/latest/link", { headers: h.auth() });
    expect(link.status, link.text).toBe(200);
    await expectSameDatabase((await download(link.json.url)).bytes, sound);
    const checked = await h.waitForLog((l) => l.msg === "image checked", "structure");
    expect(checked).toMatchObject({ check: "structure", tables: 3, pageCount: sound.length / 4096 });
  });

  it("POST /backups refuses a damaged database (SQLite's quick_check agrees) with 422 SQLITE_CORRUPT; nothing uploaded", async () => {
    expect(await quickCheck(damaged)).not.toEqual(["ok"]);
    h.source.set(w.sourcePath, serve.db(damaged));
    const a = await w.backup();
    expectErrorShape(a, 422, "SQLITE_CORRUPT");
    expect(a.json.error.message).toMatch(/ failed the structural check \(CHECK=structure\): .*\bpage \d+/i);
    expect(await h.s3.keys()).toEqual([good.key]);
    expect(await h.s3.uploads()).toEqual([]);
    const status = await w.call("/status", { headers: h.auth() });
    expect(status.json.lastRun).toMatchObject({ ok: false, error: { code: "SQLITE_CORRUPT" } });
  });

  it("the cron trigger fails on the damaged database and uploads nothing, then backs up the sound one", async () => {
    h.source.set(w.sourcePath, serve.db(damaged));
    expect((await w.scheduled()).outcome).toBe("exception");
    expect(await h.s3.keys()).toEqual([good.key]);
    expect(await h.s3.uploads()).toEqual([]);

    h.source.set(w.sourcePath, serve.db(sound));
    expect((await w.scheduled()).outcome).toBe("ok");
    const keys = await h.s3.keys();
    expect(keys).toHaveLength(2);
    expect(await h.s3.uploads()).toEqual([]);
  });
});

describe("secrets", () => {
  it("neither the API key nor the S3 secret appears in any response or workerd log line", () => {
    h.assertNoSecrets();
  });
});
