/**
 * Round trips of a ~300 MiB database through the Worker in workerd (the long suite): the
 * bundle wrangler builds (test/workers/global-setup.ts), run by Miniflare, backs up the
 * database from a URL (a node:http server on 127.0.0.1 streaming the file with its
 * Content-Length) and from an S3 object (s3://bucket/key on the in-process S3 server), with
 * CHECK=auto, which streams anything over 16 MiB with the structural check. Each backup is then
 * downloaded through the signed link the Worker returns (GET /backups/{file}/link), gunzipped
 * as a stream into a file, and compared with the source: same length, same sha256, and the
 * same `sqlite3 .dump` (both dumps hashed as they are printed).
 *
 * The database is made at test time by the sqlite3 CLI, the same bytes on every run
 * (test/helpers/big-db.ts): incompressible, hex-text and zero blobs (overflow chains), NULLs,
 * a WITHOUT ROWID table, four indexes, a freelist. Disk: the database, one restored copy at a
 * time and the S3 server's directory (~1 GB at the peak), all removed in afterAll.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeWebReadableStream } from "node:stream/web";
import { createGunzip } from "node:zlib";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { dumpDigest, makeBigDatabase, sha256File } from "../helpers/big-db.js";
import { WorkerHarness, type Route, type TestWorker } from "../workers/harness.js";

const MiB = 1024 * 1024;
const DB_MIB = 300;

const h = new WorkerHarness();
let dir: string;
let dbPath: string;
let source: { bytes: number; sha256: string; dump: { sha256: string; bytes: number } };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-worker-300-"));
  dbPath = join(dir, "big.db");
  const made = Date.now();
  await Promise.all([
    h.start(),
    (async () => {
      const bytes = await makeBigDatabase(dbPath, { mib: DB_MIB });
      const [sha256, dump] = await Promise.all([sha256File(dbPath), dumpDigest(dbPath)]);
      source = { bytes, sha256, dump };
    })(),
  ]);
  console.log(`source: ${(source.bytes / MiB).toFixed(1)} MiB, sha256 ${source.sha256}, .dump ${(source.dump.bytes / MiB).toFixed(1)} MiB (made and hashed in ${Date.now() - made} ms)`);
  expect(source.bytes).toBeGreaterThan(290 * MiB);
  expect(source.bytes).toBeLessThan(320 * MiB);
});

afterAll(async () => {
  await h.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The file with its Content-Length, streamed (never held in this process). */
const fileRoute =
  (path: string, bytes: number): Route =>
  (_req, res) => {
    res.writeHead(200, { "Content-Type": "application/vnd.sqlite3", "Content-Length": bytes });
    createReadStream(path, { highWaterMark: 1 * MiB }).pipe(res);
  };

/** GET the signed link and gunzip it as a stream into `path`: gzip bytes, image bytes, sha256 of the image. */
async function downloadTo(url: string, path: string): Promise<{ gzipBytes: number; bytes: number; sha256: string }> {
  const res = await fetch(url);
  expect(res.status, `GET ${url.split("?")[0]}`).toBe(200);
  expect(res.body).not.toBeNull();
  let gzipBytes = 0;
  let bytes = 0;
  const hash = createHash("sha256");
  await pipeline(
    Readable.fromWeb(res.body as unknown as NodeWebReadableStream<Uint8Array>),
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        gzipBytes += chunk.length;
        yield chunk;
      }
    },
    createGunzip(),
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        bytes += chunk.length;
        hash.update(chunk);
        yield chunk;
      }
    },
    createWriteStream(path),
  );
  return { gzipBytes, bytes, sha256: hash.digest("hex") };
}

/** POST /backups, then the signed link → gunzip → the same file and the same .dump; nothing else left in the bucket. */
async function roundTrip(w: TestWorker, label: string): Promise<void> {
  const t0 = Date.now();
  const a = await w.backup();
  const backupMs = Date.now() - t0;
  expect(a.status, a.text).toBe(201);
  const m = a.json as Manifest;
  expect({ bytes: m.bytes, sha256: m.sha256 }).toEqual({ bytes: source.bytes, sha256: source.sha256 });
  const checked = await h.waitForLog((l) => l.msg === "image checked" && l.key === m.key, w.name);
  expect(checked).toMatchObject({ check: "structure", bytes: source.bytes, pageCount: source.bytes / 4096, tables: 3 });

  expect(await h.s3.keys(w.prefix)).toEqual([m.key]);
  expect(await h.s3.uploads()).toEqual([]);
  const head = await h.s3.client.send(new HeadObjectCommand({ Bucket: h.s3.bucket, Key: m.key }));
  expect(head.ContentLength).toBe(m.gzipBytes);
  expect(head.Metadata?.sha256).toBe(source.sha256);

  const link = await w.call(`/backups/${m.file}/link`, { headers: h.auth() });
  expect(link.status, link.text).toBe(200);
  expect(link.json).toMatchObject({ key: m.key, size: m.gzipBytes });
  const restoredPath = join(dir, `${label}-restored.db`);
  const t1 = Date.now();
  const got = await downloadTo(link.json.url as string, restoredPath);
  const downloadMs = Date.now() - t1;
  expect(got.gzipBytes).toBe(m.gzipBytes);
  expect(got.bytes).toBe(source.bytes);
  expect(got.sha256).toBe(source.sha256);
  expect((await stat(restoredPath)).size).toBe(source.bytes);
  const t2 = Date.now();
  expect(await dumpDigest(restoredPath)).toEqual(source.dump);
  const dumpMs = Date.now() - t2;
  await rm(restoredPath);
  console.log(
    `${label}: ${(source.bytes / MiB).toFixed(1)} MiB → gzip ${(m.gzipBytes / MiB).toFixed(1)} MiB; backup in workerd ${backupMs} ms, ` +
      `link → gunzip → file ${downloadMs} ms, .dump of the copy ${dumpMs} ms`,
  );
}

describe(`round trips of a ${DB_MIB} MiB database through the Worker in workerd`, () => {
  it("from a URL with Content-Length: signed link → gunzip → identical sha256 and sqlite3 .dump", async () => {
    const w = await h.worker("url300");
    h.source.set(w.sourcePath, fileRoute(dbPath, source.bytes));
    await roundTrip(w, "url");
    expect(h.source.hits.filter((p) => p === w.sourcePath)).toHaveLength(1); // one read, no retry
    await h.dispose(w);
  });

  it("from an S3 object (s3://bucket/key): signed link → gunzip → identical sha256 and sqlite3 .dump", async () => {
    const key = "sources/big.db";
    await h.s3.client.send(
      new PutObjectCommand({ Bucket: h.s3.bucket, Key: key, Body: createReadStream(dbPath, { highWaterMark: 1 * MiB }), ContentLength: source.bytes }),
    );
    const w = await h.worker("s3300", { env: { BACKUP_SOURCE: `s3://${h.s3.bucket}/${key}` } });
    await roundTrip(w, "s3");
    await h.dispose(w);
  });

  it("no secret in any response or workerd log line", () => {
    h.assertNoSecrets();
  });
});
