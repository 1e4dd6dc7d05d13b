/**
 * The backup pipeline from Node with the R2 binding store on Miniflare's R2: a streamed
 * backup (CHECK=structure, to `.partial` then the copy through the process) keeps the
 * bucket contract, and the multipart upload of a run that died mid-upload (neither its abort
 * nor its marker's deletion happened) is aborted by a later run once stale, by its marker.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createBackupRunner, PARTIAL_SUFFIX } from "../src/backup.js";
import { parseConfig } from "../src/config.js";
import { jsonLogger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { createSource } from "../src/sources/index.js";
import { createR2Store, UPLOAD_MARKER_SUFFIX, type R2BucketLike } from "../src/store/r2.js";
import { makeDatabase, sha256 } from "./helpers/db.js";
import { capturedLines } from "./helpers/log-capture.js";
import { r2Keys, startTestR2, uploadsInProgress, type TestR2 } from "./helpers/r2.js";

const MiB = 1024 * 1024;
let r2: TestR2;
let bucket: R2BucketLike;
let runtime: Runtime;
let dir: string;
let db: Uint8Array;
const lines = capturedLines("r2 backup log");

beforeAll(async () => {
  [r2, runtime, dir, db] = await Promise.all([
    startTestR2(["BACKUPS"]),
    createNodeRuntime(jsonLogger({ write: (line) => lines.push(line) })),
    mkdtemp(join(tmpdir(), "seb-r2-backup-")),
    makeDatabase({ rows: 200, targetBytes: 12 * MiB }),
  ]);
  bucket = await r2.bucket("BACKUPS");
  await writeFile(join(dir, "app.db"), db);
});
afterAll(async () => {
  await Promise.allSettled([r2?.close(), rm(dir, { recursive: true, force: true })]);
});

function runner(bucketOf: R2BucketLike, rt: Runtime = runtime) {
  // parseConfig as a Worker would (bindings), with a file source only Node has: the pipeline does not care.
  const config = parseConfig({ R2_BUCKET: "BACKUPS", BACKUP_SOURCE: join(dir, "app.db"), BACKUP_NAME: "app", CHECK: "structure", LOCK: "off" }, { maxBytes: NODE_MAX_BYTES, bindings: true });
  const store = createR2Store(bucketOf, "BACKUPS");
  // Without the file's size the streamed backup takes the one-read path: .partial, then copy.
  const file = createSource(config.source, { files: nodeFiles });
  const source = { origin: file.origin, read: file.read.bind(file), open: file.open.bind(file) };
  return createBackupRunner({ config, runtime: rt, store, source, sleep: async () => undefined });
}

describe("backups into the R2 store", () => {
  it("a streamed backup goes to .partial, is copied to its key with the final metadata, and gunzips to the database", async () => {
    const m = await runner(bucket).run();
    expect(await r2Keys(bucket)).toEqual([m.key]);
    const object = await bucket.get(m.key);
    const gzip = new Uint8Array(await new Response((object as { body: ReadableStream }).body).arrayBuffer());
    expect(sha256(new Uint8Array(gunzipSync(gzip)))).toBe(sha256(db));
    expect(object!.customMetadata).toMatchObject({ sha256: sha256(db), bytes: String(db.length), format: "sqlite3+gzip" });
    expect(uploadsInProgress(r2.persist)).toEqual([]);
  });

  it("the upload of a run that died mid-upload is aborted by a run 4 hours later (by its marker), not by one now", async () => {
    const [first] = await r2Keys(bucket);
    // What a killed isolate leaves: a multipart upload to a .partial key with parts, and its marker.
    const dead = first!.replace(/-[0-9a-f]{6}\.sqlite\.gz$/, "-abcdef.sqlite.gz") + PARTIAL_SUFFIX;
    const upload = await bucket.createMultipartUpload(dead);
    await bucket.put(dead + UPLOAD_MARKER_SUFFIX, "", { customMetadata: { "upload-id": upload.uploadId } });
    await upload.uploadPart(1, new Uint8Array(randomBytes(5 * MiB)));
    expect(uploadsInProgress(r2.persist).map((u) => u.key)).toEqual([dead]);

    const now = await runner(bucket).run();
    expect(now.abortedUploads).toEqual([]);
    expect(uploadsInProgress(r2.persist).map((u) => u.key)).toEqual([dead]);

    const later: Runtime = { ...runtime, now: () => new Date(Date.now() + 4 * 60 * 60 * 1000) };
    const m = await runner(bucket, later).run();
    expect(m.abortedUploads).toContain(dead);
    expect(uploadsInProgress(r2.persist)).toEqual([]);
    expect((await r2Keys(bucket)).filter((k) => k.endsWith(UPLOAD_MARKER_SUFFIX) || k.endsWith(PARTIAL_SUFFIX))).toEqual([]);
  });
});
