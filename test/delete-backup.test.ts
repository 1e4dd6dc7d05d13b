/**
 * The core of `info` and `delete` (src/backup-info.ts, src/delete-backup.ts) against the real
 * S3 server: which store calls they make, encrypted backups, and what happens when retention
 * (another instance's run) removes the same object between our listing and our next request.
 * The interleaving is made with the real store: a wrapper deletes the object for real just
 * before forwarding the call, as a concurrent prune would.
 */
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeBackup } from "../src/backup-info.js";
import { deleteBackup } from "../src/delete-backup.js";
import { buildKey } from "../src/keys.js";
import { jsonLogger } from "../src/log.js";
import { createS3Store } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { countingStore } from "./api/harness.js";
import { metadataOf, putBackup } from "./helpers/backups.js";
import { makeDatabase } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let store: BackupStore;
let image: Uint8Array;
const lines: string[] = [];
const logger = jsonLogger({ write: (l) => lines.push(l), level: "debug" });
const where = (name: string) => ({ name, maxBytes: 1 << 30, s3: { prefix: "backups/" } });

beforeAll(async () => {
  s3 = await startTestStore();
  store = createS3Store({ endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket, prefix: "backups/", accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, forcePathStyle: true });
  image = await makeDatabase({ rows: 20 });
});
afterAll(() => s3?.close());

describe("describeBackup", () => {
  it("reads the listing and one HEAD, never the object; an encrypted backup is reported as such", async () => {
    const { key, file } = buildKey("backups/", "enc", new Date("2026-03-04T05:06:07.890Z"), 0xabc, true);
    const body = new Uint8Array(321).fill(7); // the content is never read
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body, ContentType: "application/octet-stream", Metadata: { ...metadataOf(image), format: "sqlite3+gzip+age" } }),
    );
    const calls: string[] = [];
    const i = await describeBackup(countingStore(store, calls), where("enc"), "latest");
    expect(calls).toEqual(["list backups/enc/", `head ${key}`]);
    expect(i).toMatchObject({ key, file, encrypted: true, format: "sqlite3+gzip+age", storedBytes: 321, bytes: image.length, contentType: "application/octet-stream", verified: "at-backup", newest: true });
    expect(i.createdAt).toBe("2026-03-04T05:06:07.890Z");
    expect(i.pageSize).toBe(4096);
    expect(i.pageCount).toBe(image.length / 4096);
  });

  it("latest with no backups, and an object removed between the listing and the HEAD: 404", async () => {
    await expect(describeBackup(store, where("empty"), "latest")).rejects.toMatchObject({ code: "BACKUP_NOT_FOUND", status: 404 });
    const { key, file } = await putBackup(s3, { name: "gone", image });
    const racing: BackupStore = { ...store, head: async (k) => (await store.delete([k]), store.head(k)) };
    await expect(describeBackup(racing, where("gone"), file)).rejects.toMatchObject({ code: "BACKUP_NOT_FOUND", message: expect.stringContaining("removed just now") });
    expect(await s3.keys("backups/gone/")).not.toContain(key);
  });
});

describe("deleteBackup", () => {
  it("one listing and one DELETE of exactly the key; retention removing it first changes nothing else", async () => {
    const older = await putBackup(s3, { name: "race", image, time: new Date("2026-01-01T00:00:00.000Z") });
    const middle = await putBackup(s3, { name: "race", image, time: new Date("2026-01-02T00:00:00.000Z") });
    const newest = await putBackup(s3, { name: "race", image, time: new Date("2026-01-03T00:00:00.000Z") });
    const calls: string[] = [];
    const d = await deleteBackup(countingStore(store, calls), where("race"), older.file, {}, logger);
    expect(calls).toEqual(["list backups/race/", `delete ${older.key}`]);
    expect(d).toMatchObject({ key: older.key, wasNewest: false, remaining: 2 });
    expect(await s3.keys("backups/race/")).toEqual([middle.key, newest.key]);

    // A prune deletes `middle` after our listing, before our DELETE: S3 deletes idempotently,
    // so the outcome is the one asked for and nothing else is touched.
    const racing: BackupStore = { ...store, delete: async (keys) => (await store.delete([middle.key]), store.delete(keys)) };
    const raced = await deleteBackup(racing, where("race"), middle.file, {}, logger);
    expect(raced.key).toBe(middle.key);
    expect(await s3.keys("backups/race/")).toEqual([newest.key]);
    // After it: a clean 404.
    await expect(deleteBackup(store, where("race"), middle.file, {}, logger)).rejects.toMatchObject({ code: "BACKUP_NOT_FOUND", status: 404 });
    // The only one left is the newest: refused without force, even through the library.
    await expect(deleteBackup(store, where("race"), newest.file, {}, logger)).rejects.toMatchObject({ code: "NEWEST_BACKUP", status: 409, message: expect.stringContaining("its only one") });
    expect(await s3.keys("backups/race/")).toEqual([newest.key]);
    expect(lines.map((l) => JSON.parse(l).msg).filter((m) => m === "backup deleted")).toHaveLength(2);
  });
});
