/**
 * Streamed backups inside workerd (the bundle wrangler builds, run by Miniflare): a database
 * over the Worker's quick_check size (16 MiB) is streamed with the structural check, from a
 * URL (one response with Content-Length, or many small chunked writes) and from an S3 object,
 * and the signed link gives back the same database. Damage found at the end of the stream
 * leaves nothing in the bucket.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { quickCheck, sha256 } from "../helpers/db.js";
import { download, expectSameDatabase, serve, WorkerHarness, type Route, type TestWorker } from "./harness.js";

const MiB = 1024 * 1024;
const h = new WorkerHarness();
let dir: string;
let db: Uint8Array;
let w: TestWorker;

/** Many small writes: a source that sends 16 KiB at a time, without Content-Length. */
const trickle =
  (bytes: Uint8Array): Route =>
  (_req, res) => {
    res.writeHead(200, { "Content-Type": "application/octet-stream" });
    let at = 0;
    const next = (): void => {
      while (at < bytes.length) {
        const more = res.write(bytes.subarray(at, at + 16 * 1024));
        at += 16 * 1024;
        if (!more) return void res.once("drain", next);
      }
      res.end();
    };
    next();
  };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-worker-stream-"));
  const path = join(dir, "big.db");
  // ~40 MiB: text rows (compressible) and random blobs, an index, made by the sqlite3 CLI.
  execFileSync("sqlite3", [
    path,
    `PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, b BLOB); CREATE INDEX t_name ON t(name);
     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<12000) INSERT INTO t(name, b) SELECT printf('row %d %s', i, hex(randomblob(40))), randomblob(3000) FROM c;`,
  ]);
  [, db] = await Promise.all([h.start(), readFile(path).then((b) => new Uint8Array(b))]);
  expect(db.length).toBeGreaterThan(32 * MiB);
  w = await h.worker("streamed");
});
afterAll(async () => {
  await h.close();
  await rm(dir, { recursive: true, force: true });
});

async function backedUp(worker: TestWorker): Promise<Manifest> {
  const a = await worker.backup();
  expect(a.status, a.text).toBe(201);
  const m = a.json as Manifest;
  expect(m.sha256).toBe(sha256(db));
  const checked = await h.waitForLog((l) => l.msg === "image checked" && l.key === m.key, worker.name);
  expect(checked).toMatchObject({ check: "structure", tables: 1, pageCount: db.length / 4096 });
  const link = await worker.call(`/backups/${m.file}/link`, { headers: h.auth() });
  expect(link.status, link.text).toBe(200);
  const { bytes } = await download(link.json.url);
  await expectSameDatabase(bytes, db);
  expect(await h.s3.keys(worker.prefix)).toContain(m.key);
  expect((await h.s3.keys(worker.prefix)).filter((k) => k.endsWith(".partial"))).toEqual([]);
  expect(await h.s3.uploads(worker.prefix)).toEqual([]);
  return m;
}

describe("streamed backups in workerd", () => {
  it("from a URL with Content-Length", async () => {
    h.source.set(w.sourcePath, serve.db(db));
    await backedUp(w);
  });

  it("from a URL that sends 16 KiB chunks without Content-Length", async () => {
    h.source.set(w.sourcePath, trickle(db));
    await backedUp(w);
  });

  it("from an S3 object (s3://bucket/key)", async () => {
    const key = "sources/big.db";
    await h.s3.client.send(new PutObjectCommand({ Bucket: h.s3.bucket, Key: key, Body: db }));
    const fromS3 = await h.worker("from-s3", { env: { BACKUP_SOURCE: `s3://${h.s3.bucket}/${key}` } });
    await backedUp(fromS3);
  });

  it("damage near the end of the file: 422 SQLITE_CORRUPT after parts were uploaded, nothing left", async () => {
    const bad = db.slice();
    // The last table leaf page gets a cell pointer into its own header.
    for (let p = bad.length / 4096 - 1; p > 0; p--) {
      const at = (p - 1) * 4096;
      if (bad[at] === 13 && ((bad[at + 3]! << 8) | bad[at + 4]!) > 0) {
        bad[at + 8] = 0;
        bad[at + 9] = 4;
        break;
      }
    }
    expect(await quickCheck(bad)).not.toEqual(["ok"]);
    const damaged = await h.worker("damaged");
    h.source.set(damaged.sourcePath, serve.db(bad));
    const a = await damaged.backup();
    expect(a.status, a.text).toBe(422);
    expect(a.json.error.code).toBe("SQLITE_CORRUPT");
    expect(await h.s3.keys(damaged.prefix)).toEqual([]);
    expect(await h.s3.uploads(damaged.prefix)).toEqual([]);
  });
});
