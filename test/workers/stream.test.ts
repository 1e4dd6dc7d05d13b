/**
 * Streamed backups inside workerd (the bundle wrangler builds, run by Miniflare): a database
 * over the Worker's quick_check size (16 MiB) is streamed with the structural check, from a
 * URL (one response with Content-Length, or many small chunked writes) and from an S3 object,
 * and the signed link gives back the same database.
 *
 * Failures after parts were uploaded (the Worker's S3 traffic goes through a recording proxy,
 * test/helpers/fault-proxy.ts, so the S3 server's answers are known, not assumed): damage deep
 * inside found by the check at the end of the stream, a source cut mid-stream, a source that
 * changed under the read (a torn copy). Each leaves no new key, no `.partial`, no multipart
 * upload, and the earlier backup whole.
 */
import { execFileSync } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { quickCheck, sha256 } from "../helpers/db.js";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy.js";
import { download, expectSameDatabase, serve, WorkerHarness, type Route, type TestWorker } from "./harness.js";

const MiB = 1024 * 1024;
const h = new WorkerHarness();
let dir: string;
let dbPath: string;
let db: Uint8Array;
let w: TestWorker;
let proxy: FaultProxy;

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
  dbPath = path;
  [, db] = await Promise.all([h.start(), readFile(path).then((b) => new Uint8Array(b))]);
  expect(db.length).toBeGreaterThan(32 * MiB);
  w = await h.worker("streamed");
  proxy = await startFaultProxy(h.s3.endpoint);
});
afterAll(async () => {
  await proxy?.close();
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
});

// Under load (2 shared cores) a 40 MiB backup in workerd has taken over 30 s: more time than the default 60 s per test.
describe("failures after parts were uploaded leave no object and no multipart upload; the earlier backup is intact", { timeout: 180_000 }, () => {
  let f: TestWorker;
  let earlier: Manifest;

  beforeAll(async () => {
    f = await h.worker("failing", { env: { S3_ENDPOINT: proxy.endpoint } });
    h.source.set(f.sourcePath, serve.db(db));
    const a = await f.backup();
    expect(a.status, a.text).toBe(201);
    earlier = a.json as Manifest;
  }, 180_000);

  /** This Worker's requests to the S3 server since `from`. */
  const requestsSince = (from: number) => proxy.requests.slice(from).filter((r) => r.path.startsWith(`/${h.s3.bucket}/${f.prefix}`));
  const partsAccepted = (from: number) => requestsSince(from).filter((r) => r.op === "UploadPart" && r.status === 200).length;

  /** What the S3 server saw of the failed run: parts it accepted before the upload was aborted, and no completion. */
  function expectPartsThenAbort(from: number): number {
    const seen = requestsSince(from);
    const abortAt = seen.findIndex((r) => r.op === "AbortMultipartUpload");
    expect(abortAt, seen.map((r) => `${r.op} ${r.status}`).join(", ")).toBeGreaterThan(0);
    const parts = seen.slice(0, abortAt).filter((r) => r.op === "UploadPart" && r.status === 200).length;
    expect(parts).toBeGreaterThanOrEqual(2);
    // Nothing was completed or put (the lease's .lock aside).
    expect(seen.filter((r) => r.op === "CompleteMultipartUpload" || (r.op === "PutObject" && !r.path.endsWith("/.lock")))).toEqual([]);
    return parts;
  }

  async function expectOnlyEarlier(): Promise<void> {
    expect(await h.s3.keys(f.prefix)).toEqual([earlier.key]); // no new key, no .partial
    expect(await h.s3.uploads()).toEqual([]);
    const head = await h.s3.client.send(new HeadObjectCommand({ Bucket: h.s3.bucket, Key: earlier.key }));
    expect({ size: head.ContentLength, sha256: head.Metadata?.sha256 }).toEqual({ size: earlier.gzipBytes, sha256: earlier.sha256 });
  }

  it("damage deep inside (a leaf page near the end): 422 SQLITE_CORRUPT after parts were uploaded", async () => {
    const bad = db.slice();
    // The last table leaf page gets a cell pointer into its own header.
    let damaged = -1;
    for (let p = bad.length / 4096 - 1; p > 0; p--) {
      const at = (p - 1) * 4096;
      if (bad[at] === 13 && ((bad[at + 3]! << 8) | bad[at + 4]!) > 0) {
        bad[at + 8] = 0;
        bad[at + 9] = 4;
        damaged = p;
        break;
      }
    }
    expect(damaged).toBeGreaterThan(bad.length / 4096 / 2);
    expect(await quickCheck(bad)).not.toEqual(["ok"]);
    h.source.set(f.sourcePath, serve.db(bad));
    const from = proxy.requests.length;
    const a = await f.backup();
    expect(a.status, a.text).toBe(422);
    expect(a.json.error.code).toBe("SQLITE_CORRUPT");
    expect(a.json.error.message).toContain(`page ${damaged}`);
    console.log(`damage: ${expectPartsThenAbort(from)} parts accepted before the abort`);
    await expectOnlyEarlier();
  });

  it("a URL source cut mid-stream: 502 SOURCE_UNREADABLE after parts were uploaded", async () => {
    const from = proxy.requests.length;
    let sent = 0;
    const started = Date.now();
    // 1 MiB at a time until the S3 server has accepted two parts, then the connection is cut;
    // the last MiB is never sent.
    h.source.set(f.sourcePath, (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": db.length });
      const step = (): void => {
        if (partsAccepted(from) >= 2 || Date.now() - started > 90_000) return void res.destroy();
        if (sent + MiB >= db.length) return void setTimeout(step, 50);
        const more = res.write(db.subarray(sent, sent + MiB));
        sent += MiB;
        if (more) setTimeout(step, 20);
        else res.once("drain", () => setTimeout(step, 20));
      };
      step();
    });
    const a = await f.backup();
    expect(a.status, a.text).toBe(502);
    expect(a.json.error.code).toBe("SOURCE_UNREADABLE");
    expect(a.json.error.message).toMatch(/Content-Length/);
    expect(sent).toBeLessThan(db.length);
    console.log(`cut: after ${sent / MiB} of ${(db.length / MiB).toFixed(1)} MiB sent; ${expectPartsThenAbort(from)} parts accepted before the abort`);
    await expectOnlyEarlier();
  });

  it("a URL source that changed under the read (the first half before a writer's commit, the rest after): 422 after parts were uploaded", async () => {
    // The writer deletes every third row (rollback journal, no VACUUM: same size; pages freed
    // and b-tree pages rewritten all over the file). A live file served over HTTP gives this.
    const afterPath = join(dir, "after.db");
    await copyFile(dbPath, afterPath);
    execFileSync("sqlite3", [afterPath, "DELETE FROM t WHERE id % 3 = 0;"]);
    const after = new Uint8Array(await readFile(afterPath));
    expect(after.length).toBe(db.length);
    const half = Math.floor(db.length / 2 / 4096) * 4096;
    const torn = new Uint8Array(db.length);
    torn.set(db.subarray(0, half));
    torn.set(after.subarray(half), half);
    const tornPath = join(dir, "torn.db");
    await writeFile(tornPath, torn);
    const sqliteSays = execFileSync("sqlite3", ["-readonly", tornPath, "PRAGMA quick_check"], { encoding: "utf8" }).trim();
    expect(sqliteSays).not.toBe("ok"); // SQLite itself refuses the torn copy
    await rm(afterPath);
    await rm(tornPath);

    h.source.set(f.sourcePath, serve.db(torn));
    const from = proxy.requests.length;
    const a = await f.backup();
    expect(a.status, a.text).toBe(422);
    expect(a.json.error.code).toBe("SQLITE_CORRUPT");
    console.log(`torn: ${expectPartsThenAbort(from)} parts accepted before the abort; SQLite: ${sqliteSays.split("\n")[0]}; Worker: ${a.json.error.message.slice(0, 200)}`);
    await expectOnlyEarlier();
  });

  it("the earlier backup still downloads through its signed link as the database it was", async () => {
    const link = await f.call(`/backups/${earlier.file}/link`, { headers: h.auth() });
    expect(link.status, link.text).toBe(200);
    const { bytes } = await download(link.json.url);
    expect(sha256(bytes)).toBe(earlier.sha256);
    expect(sha256(bytes)).toBe(sha256(db));
  });
});
