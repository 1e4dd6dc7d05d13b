/**
 * The streamed pipeline (CHECK=structure, and CHECK=auto above the runtime's quick_check
 * size) against a real S3 server: round trips through the signed link into SQLite, damage
 * found after parts were uploaded, a source cut mid-stream, a file changed under the read,
 * and the copy that gives a finished upload its key and metadata.
 */
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import { mkdtemp, open as openFile, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createBackupRunner, PARTIAL_SUFFIX } from "../src/backup.js";
import { createLink } from "../src/catalog.js";
import { parseConfig } from "../src/config.js";
import { jsonLogger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { createSource } from "../src/sources/index.js";
import type { Source } from "../src/sources/source.js";
import { createS3Store, MIN_PART_SIZE } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { dumpTables, quickCheck, sha256 } from "./helpers/db.js";
import { backupError } from "./helpers/errors.js";
import { capturedLines } from "./helpers/log-capture.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let dir: string;
let runtime: Runtime;
let server: Server;
let served: (res: import("node:http").ServerResponse) => void = (res) => res.end();
let baseUrl: string;
const logLines = capturedLines("stream backup log");

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-stream-"));
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), level: "debug" }));
  server = createServer((_req, res) => served(res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  baseUrl = `http://127.0.0.1:${address.port}/app.db`;
});
afterAll(async () => {
  server?.close();
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A database made by the sqlite3 CLI: `rows` rows of `blob` random bytes (incompressible), an index. */
function makeDb(path: string, rows: number, blob: number): void {
  execFileSync("sqlite3", [
    path,
    `PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, b BLOB); CREATE INDEX t_name ON t(name);
     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<${rows}) INSERT INTO t(name, b) SELECT 'row ' || i, randomblob(${blob}) FROM c;`,
  ]);
}

function setup(env: Record<string, string>, options: { rt?: Runtime; wrapStore?: (s: BackupStore) => BackupStore; wrapSource?: (s: Source) => Source } = {}) {
  const config = parseConfig(s3.env(env), { maxBytes: NODE_MAX_BYTES });
  const store = createS3Store(config.s3);
  const source = createSource(config.source, { files: nodeFiles }, { readAttempts: config.readAttempts });
  const deps = {
    config,
    runtime: options.rt ?? runtime,
    store: options.wrapStore ? options.wrapStore(store) : store,
    source: options.wrapSource ? options.wrapSource(source) : source,
    sleep: async () => undefined,
  };
  return { config, store, runner: createBackupRunner(deps) };
}

async function restoredViaLink(env: Record<string, string>): Promise<Uint8Array> {
  const { config, store } = setup(env);
  const link = await createLink(store, config, "latest", new Date());
  const response = await fetch(link.url);
  expect(response.status).toBe(200);
  return new Uint8Array(gunzipSync(new Uint8Array(await response.arrayBuffer())));
}

const msgsOf = (name: string) => logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.name === name);

describe("streamed backups", () => {
  it("CHECK=auto streams a file over the runtime's quick_check size; the signed link gives back the same database", async () => {
    const path = join(dir, "auto.db");
    makeDb(path, 400, 2000);
    const source = new Uint8Array(await readFile(path));
    const env = { BACKUP_SOURCE: path, BACKUP_NAME: "auto", VERIFY: "full" };
    const small: Runtime = { ...runtime, quickCheckMaxBytes: 64 * 1024 };
    const manifest = await setup(env, { rt: small }).runner.run();
    expect(manifest.sha256).toBe(sha256(source));
    expect(manifest.bytes).toBe(source.length);
    const restored = await restoredViaLink(env);
    expect(sha256(restored)).toBe(sha256(source));
    expect(await dumpTables(restored)).toEqual(await dumpTables(source));
    expect(msgsOf("auto").find((l) => l.msg === "image checked")).toMatchObject({ check: "structure", tables: 1 });
    // The same file under the default threshold takes SQLite's own quick_check, in memory.
    await setup({ ...env, BACKUP_NAME: "auto-small" }).runner.run();
    expect(msgsOf("auto-small").find((l) => l.msg === "image checked")).toMatchObject({ check: "quick" });
    expect(await s3.keys("backups/auto/")).toEqual([manifest.key]);
    const head = await setup(env).store.head(manifest.key);
    expect(head?.metadata).toMatchObject({ sha256: manifest.sha256, bytes: String(source.length), "page-size": "4096", format: expect.any(String) });
    expect(head?.contentType).toBe("application/gzip");
  });

  it("damage deep inside, found after parts were uploaded, leaves no object and no multipart upload", async () => {
    const path = join(dir, "deep.db");
    makeDb(path, 6000, 3000); // ~26 MiB of random bytes: several 5 MiB parts before the end
    const fh = await openFile(path, "r+");
    const size = (await fh.stat()).size;
    // The right-child pointer of the last interior page of the table... simpler and as deep: a
    // leaf page near the end gets a cell pointer into its own header.
    const page = new Uint8Array(4096);
    let damaged = -1;
    for (let p = size / 4096 - 1; p > size / 4096 - 200; p--) {
      await fh.read(page, 0, 4096, (p - 1) * 4096);
      if (page[0] === 13 && ((page[3]! << 8) | page[4]!) > 0) {
        page[8] = 0;
        page[9] = 4;
        await fh.write(page, 0, 4096, (p - 1) * 4096);
        damaged = p;
        break;
      }
    }
    await fh.close();
    expect(damaged).toBeGreaterThan(0);
    expect(await quickCheck(new Uint8Array(await readFile(path)))).not.toEqual(["ok"]);

    let uploadedBeforeFailure = 0;
    const spy = (store: BackupStore): BackupStore => ({
      ...store,
      upload: (key, body, opts) => store.upload(key, body, { ...opts, onProgress: (n) => ((uploadedBeforeFailure = Math.max(uploadedBeforeFailure, n)), opts.onProgress?.(n)) }),
    });
    // Without a size known up front (as for a URL or an S3 object), the check runs beside the upload.
    const unsized = (source: Source): Source => ({ origin: source.origin, read: (o) => source.read(o), open: (o) => source.open(o) });
    const err = await backupError(setup({ BACKUP_SOURCE: path, BACKUP_NAME: "deep", CHECK: "structure" }, { wrapStore: spy, wrapSource: unsized }).runner.run());
    expect({ code: err.code, status: err.status }).toEqual({ code: "SQLITE_CORRUPT", status: 422 });
    expect(err.message).toContain(`page ${damaged}`);
    expect(uploadedBeforeFailure).toBeGreaterThanOrEqual(2 * MIN_PART_SIZE);
    expect(await s3.keys("backups/deep/")).toEqual([]);
    expect(await s3.uploads()).toEqual([]);

    // A file source is read and checked before its upload starts: the same damage sends nothing.
    uploadedBeforeFailure = 0;
    let uploads = 0;
    const counting = (store: BackupStore): BackupStore => ({ ...store, upload: (key, body, opts) => (uploads++, store.upload(key, body, opts)) });
    const again = await backupError(setup({ BACKUP_SOURCE: path, BACKUP_NAME: "deep", CHECK: "structure" }, { wrapStore: counting }).runner.run());
    expect({ code: again.code, message: again.message }).toEqual({ code: err.code, message: err.message });
    expect(uploads).toBe(0);
    expect(await s3.keys("backups/deep/")).toEqual([]);
    expect(await s3.uploads()).toEqual([]);
  });

  it("a file changed between the read that checks it and the read that uploads it: that upload is aborted, and the backup holds one consistent state", async () => {
    const path = join(dir, "between.db");
    makeDb(path, 3000, 3000); // several parts
    let opens = 0;
    const meddle = (source: Source): Source => ({
      ...source,
      open: async (o) => {
        // The second read (the upload's) sees a commit the first did not.
        if (++opens === 2) execFileSync("sqlite3", [path, "UPDATE t SET name = 'between' WHERE id = 7;"]);
        return source.open(o);
      },
    });
    let uploadedBeforeFailure = 0;
    const spy = (store: BackupStore): BackupStore => ({
      ...store,
      upload: (key, body, opts) => store.upload(key, body, { ...opts, onProgress: (n) => ((uploadedBeforeFailure = Math.max(uploadedBeforeFailure, n)), opts.onProgress?.(n)) }),
    });
    const manifest = await setup({ BACKUP_SOURCE: path, BACKUP_NAME: "between", CHECK: "structure" }, { wrapSource: meddle, wrapStore: spy }).runner.run();
    expect(opens).toBe(3);
    expect(uploadedBeforeFailure).toBeGreaterThanOrEqual(MIN_PART_SIZE);
    expect(manifest.sha256).toBe(sha256(new Uint8Array(await readFile(path))));
    expect(manifest.readAttempts).toBe(2);
    expect(msgsOf("between").map((l) => l.msg)).toContain("source changed during the read; reading again");
    expect(await s3.keys("backups/between/")).toEqual([manifest.key]);
    expect(await s3.uploads()).toEqual([]);
  });

  it("a URL source cut mid-stream leaves nothing behind, and the error says so", async () => {
    const path = join(dir, "cut.db");
    makeDb(path, 6000, 3000);
    const bytes = await readFile(path);
    expect(bytes.length).toBeGreaterThan(4 * MIN_PART_SIZE); // half of it fills parts before the cut
    served = (res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes.length) });
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => res.destroy());
    };
    const err = await backupError(setup({ BACKUP_SOURCE: baseUrl, BACKUP_NAME: "cut", CHECK: "structure" }).runner.run());
    expect(err.code).toBe("SOURCE_UNREADABLE");
    expect(err.message).toMatch(/Content-Length said/);
    expect(await s3.keys("backups/cut/")).toEqual([]);
    expect(await s3.uploads()).toEqual([]);

    served = (res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" }); // chunked: no length to compare
      res.end(bytes);
    };
    const manifest = await setup({ BACKUP_SOURCE: baseUrl, BACKUP_NAME: "cut" }).runner.run();
    expect(manifest.sha256).toBe(sha256(bytes));
    expect(msgsOf("cut").find((l) => l.msg === "image checked")).toMatchObject({ check: "structure" });
  });

  it("a file changed under the streamed read is read again; the backup holds one consistent state", async () => {
    const path = join(dir, "moving.db");
    makeDb(path, 1500, 3000);
    let writes = 0;
    // After the first chunk of the first attempt, a writer commits (rollback journal: the main file changes).
    const meddle = (source: Source): Source => ({
      ...source,
      open: async (o) => {
        const opened = await source.open(o);
        if (writes > 0) return opened;
        const reader = opened.stream.getReader();
        const stream = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const { done, value } = await reader.read();
            if (done) return controller.close();
            controller.enqueue(value);
            if (writes++ === 0) execFileSync("sqlite3", [path, "UPDATE t SET name = 'changed' WHERE id = 1;"]);
          },
        });
        return { ...opened, stream };
      },
    });
    const manifest = await setup({ BACKUP_SOURCE: path, BACKUP_NAME: "moving", CHECK: "structure" }, { wrapSource: meddle }).runner.run();
    expect(manifest.readAttempts).toBe(2);
    const now = new Uint8Array(await readFile(path));
    expect(manifest.sha256).toBe(sha256(now));
    expect(msgsOf("moving").map((l) => l.msg)).toContain("source changed during the read; reading again");
    expect(await s3.keys("backups/moving/")).toEqual([manifest.key]);
  });

  it("a store copies objects larger than one CopyObject in parts, with the new metadata", async () => {
    const config = parseConfig(s3.env({ BACKUP_SOURCE: "/x.db", BACKUP_NAME: "copy" }), { maxBytes: NODE_MAX_BYTES });
    const store = createS3Store(config.s3, { maxSingleCopy: MIN_PART_SIZE, copyPartSize: MIN_PART_SIZE });
    const body = new Uint8Array(2 * MIN_PART_SIZE + 12345).map((_, i) => (i * 7919) & 0xff);
    await store.upload("backups/copy/from", new ReadableStream({ start: (c) => (c.enqueue(body), c.close()) }), { metadata: { a: "1" }, contentType: "application/gzip", contentDisposition: "attachment" });
    await store.copy("backups/copy/from", "backups/copy/to", body.length, { metadata: { sha256: "abc", format: "x" }, contentType: "application/gzip", contentDisposition: 'attachment; filename="to"' });
    const head = await store.head("backups/copy/to");
    expect(head).toMatchObject({ size: body.length, metadata: { sha256: "abc", format: "x" } });
    const got = new Uint8Array(await new Response(await store.get("backups/copy/to")).arrayBuffer());
    expect(sha256(got)).toBe(sha256(body));
    expect(await s3.uploads()).toEqual([]);
  });
});

describe("stale partial uploads", () => {
  it("a <key>.partial left by a run that died is removed by a later run once old enough; a fresh one and foreign objects are not", async () => {
    const path = join(dir, "stale.db");
    makeDb(path, 10, 100);
    const env = { BACKUP_SOURCE: path, BACKUP_NAME: "stale", CHECK: "structure" };
    const first = await setup(env).runner.run();
    const { store } = setup(env);
    const empty = () => new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    const put = (key: string) => store.upload(key, empty(), { metadata: {}, contentType: "application/gzip", contentDisposition: "attachment" });
    const dead = first.key.replace(/\.sqlite\.gz$/, "-dead.sqlite.gz").replace(/-[0-9a-f]{6}-dead/, "-abcdef") + PARTIAL_SUFFIX;
    await put(dead);
    await put("backups/stale/notes.partial"); // not one of ours: never touched
    // A run four hours later: the partial is older than STALE_UPLOAD_MS.
    const later: Runtime = { ...runtime, now: () => new Date(Date.now() + 4 * 60 * 60 * 1000) };
    const second = await setup(env, { rt: later }).runner.run();
    expect(second.abortedUploads).toContain(dead);
    expect((await s3.keys("backups/stale/")).sort()).toEqual([first.key, second.key, "backups/stale/notes.partial"].sort());
    // A run now does not touch a partial that may belong to a run in progress.
    await put(dead);
    const third = await setup(env).runner.run();
    expect(third.abortedUploads).toEqual([]);
    expect(await s3.keys("backups/stale/")).toContain(dead);
  });
});
