/**
 * DELETE /backups/{file} through the real Worker in workerd, against the real S3 server:
 * 401/403, hostile names, 404, 409 NEWEST_BACKUP, exact removal (the bucket's full key list
 * before and after), the log line and the metrics counter.
 */
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { makeDatabase } from "../helpers/db.js";
import { putBackup } from "../helpers/backups.js";
import { expectErrorShape } from "../api/harness.js";
import { HOSTILE_FILE_SEGMENTS, VALID_FILE } from "../helpers/api-cases.js";
import { serve, WorkerHarness, type TestWorker } from "./harness.js";

const h = new WorkerHarness();
let w: TestWorker;
let db: Uint8Array;
const made: Manifest[] = [];
let neighbour: { key: string; file: string };

beforeAll(async () => {
  await h.start();
  db = await makeDatabase({ rows: 50 });
  w = await h.worker("files", { env: { MAX_COUNT: "10", LOCK: "off" } });
  h.source.set(w.sourcePath, serve.db(db));
  for (let i = 0; i < 2; i++) {
    const a = await w.backup();
    expect(a.status, a.text).toBe(201);
    made.push(a.json as Manifest);
  }
  neighbour = await putBackup(h.s3, { name: "files2", image: db });
  await h.s3.client.send(new PutObjectCommand({ Bucket: h.s3.bucket, Key: "backups/files/.lock", Body: "not a backup" }));
});
afterAll(async () => {
  h.assertNoSecrets();
  await h.close();
});

async function unchanged(path: string, headers: Record<string, string>, status: number, code: string) {
  const before = await h.s3.keys();
  const a = await w.call(path, { method: "DELETE", headers });
  expectErrorShape(a, status, code);
  expect(await h.s3.keys()).toEqual(before);
  return a;
}

describe("DELETE /backups/{file} in workerd", () => {
  it("401 without or with a wrong key; 403 with the API off", async () => {
    const path = `/backups/${made[0]!.file}`;
    await unchanged(path, {}, 401, "UNAUTHORIZED");
    await unchanged(path, h.auth("x-api-key", "wrong-key-but-long-enough-0123456789"), 401, "UNAUTHORIZED");
    const off = await h.worker("files", { env: { API_KEY: null } });
    const before = await h.s3.keys();
    expectErrorShape(await off.call(path, { method: "DELETE", headers: h.auth() }), 403, "API_DISABLED");
    expect(await h.s3.keys()).toEqual(before);
    await h.dispose(off);
  });

  it("400 for every hostile name, latest and the neighbour's backup; 404 for an absent one; 409 for the newest", async () => {
    for (const [label, segment] of HOSTILE_FILE_SEGMENTS) {
      const a = await unchanged(`/backups/${segment}?force=1`, h.auth(), 400, "INVALID_BACKUP_FILE");
      expect(a.text.length, label).toBeLessThan(600);
    }
    await unchanged("/backups/latest?force=1", h.auth(), 400, "INVALID_BACKUP_FILE");
    await unchanged(`/backups/${neighbour.file}?force=1`, h.auth(), 400, "INVALID_BACKUP_FILE");
    await unchanged(`/backups/${VALID_FILE}`, h.auth(), 404, "BACKUP_NOT_FOUND");
    const newest = await unchanged(`/backups/${made[1]!.file}`, h.auth(), 409, "NEWEST_BACKUP");
    expect(newest.json.error.message).toContain("?force=1");
  });

  it("200 removes exactly the named object, logs and counts it; the newest goes with ?force=1", async () => {
    const before = await h.s3.keys();
    const a = await w.call(`/backups/${made[0]!.file}`, { method: "DELETE", headers: h.auth() });
    expect(a.status, a.text).toBe(200);
    expect(a.json).toMatchObject({ key: made[0]!.key, file: made[0]!.file, name: "files", size: made[0]!.gzipBytes, wasNewest: false, remaining: 1 });
    expect(await h.s3.keys()).toEqual(before.filter((k) => k !== made[0]!.key));
    await h.waitForLog((l) => l.msg === "backup deleted" && l.key === made[0]!.key, "files");
    await unchanged(`/backups/${made[0]!.file}`, h.auth(), 404, "BACKUP_NOT_FOUND");

    const forced = await w.call(`/backups/${made[1]!.file}?force=1`, { method: "DELETE", headers: h.auth("x-api-key") });
    expect(forced.status, forced.text).toBe(200);
    expect(forced.json).toMatchObject({ key: made[1]!.key, wasNewest: true, remaining: 0 });
    expect(await h.s3.keys()).toEqual(before.filter((k) => k !== made[0]!.key && k !== made[1]!.key));
    expect(await h.s3.keys()).toEqual(expect.arrayContaining([neighbour.key, "backups/files/.lock"]));

    const metrics = await w.call("/metrics", { headers: h.auth() });
    expect(metrics.text).toContain('sqlite_backup_deleted_total{name="files"} 2\n');
  });
});
