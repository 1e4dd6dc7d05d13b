/**
 * The streamed pipeline (CHECK=structure, and CHECK=auto above the runtime's quick_check
 * size) against a real S3 server: round trips through the signed link into SQLite, damage
 * found after parts were uploaded, a source cut mid-stream, a file changed under the read,
 * and the copy that gives a finished upload its key and metadata.
 */
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, open as openFile, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createBackupRunner, PARTIAL_SUFFIX, type Manifest } from "../src/backup.js";
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

const MiB = 1024 * 1024;
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

/**
 * A source that changed under the read, as a live file served over HTTP gives it: the first
 * half of the database as it was (`before`), the rest as it is after a writer deleted every
 * third row (rollback journal, no VACUUM: the same size, pages freed and b-tree pages
 * rewritten all over the file).
 */
function tornPair(base: string): { before: Uint8Array; after: Uint8Array; torn: Uint8Array } {
  makeDb(`${base}.db`, 6000, 3000);
  const before = new Uint8Array(readFileSync(`${base}.db`));
  execFileSync("sqlite3", [`${base}.db`, "DELETE FROM t WHERE id % 3 = 0;"]);
  const after = new Uint8Array(readFileSync(`${base}.db`));
  expect(after.length).toBe(before.length);
  const half = Math.floor(before.length / 2 / 4096) * 4096;
  const torn = new Uint8Array(before.length);
  torn.set(before.subarray(0, half));
  torn.set(after.subarray(half), half);
  return { before, after, torn };
}

/** `PRAGMA quick_check` of the sqlite3 CLI on `bytes` (written to `path`). */
function sqliteQuickCheck(bytes: Uint8Array, path: string): string {
  writeFileSync(path, bytes);
  try {
    return execFileSync("sqlite3", ["-readonly", path, "PRAGMA quick_check"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch (err) {
    return `error: ${String((err as { stderr?: string }).stderr ?? err)}`;
  }
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

/** A store whose upload progress (bytes of parts the S3 server has accepted) is recorded in `uploaded.bytes`. */
function progressSpy(uploaded: { bytes: number }): (store: BackupStore) => BackupStore {
  return (store) => ({
    ...store,
    upload: (key, body, opts) => store.upload(key, body, { ...opts, onProgress: (n) => ((uploaded.bytes = Math.max(uploaded.bytes, n)), opts.onProgress?.(n)) }),
  });
}

/**
 * After a failed run: the bucket under `prefix` holds exactly the earlier backup (no new key,
 * no `.partial`), no multipart upload is left anywhere, and the earlier backup is whole (its
 * size and sha256 as it was made, and its bytes gunzip to that sha256).
 */
async function expectOnlyEarlier(prefix: string, earlier: Manifest): Promise<void> {
  expect(await s3.keys(prefix)).toEqual([earlier.key]);
  expect(await s3.uploads()).toEqual([]);
  const { store } = setup({ BACKUP_SOURCE: "/unused.db", BACKUP_NAME: earlier.name });
  const head = await store.head(earlier.key);
  expect({ size: head?.size, sha256: head?.metadata.sha256 }).toEqual({ size: earlier.gzipBytes, sha256: earlier.sha256 });
  const gz = new Uint8Array(await new Response(await store.get(earlier.key)).arrayBuffer());
  expect(sha256(new Uint8Array(gunzipSync(gz)))).toBe(earlier.sha256);
}

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

  it("damage deep inside, found after parts were uploaded, leaves no object and no multipart upload; the earlier backup is intact", async () => {
    const path = join(dir, "deep.db");
    makeDb(path, 6000, 3000); // ~26 MiB of random bytes: several 5 MiB parts before the end
    const earlier = await setup({ BACKUP_SOURCE: path, BACKUP_NAME: "deep", CHECK: "structure" }).runner.run();
    const fh = await openFile(path, "r+");
    const size = (await fh.stat()).size;
    // A table leaf page near the end gets a cell pointer into its own header.
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

    const uploaded = { bytes: 0 };
    // Without a size known up front (as for a URL or an S3 object), the check runs beside the upload.
    const unsized = (source: Source): Source => ({ origin: source.origin, read: (o) => source.read(o), open: (o) => source.open(o) });
    const err = await backupError(setup({ BACKUP_SOURCE: path, BACKUP_NAME: "deep", CHECK: "structure" }, { wrapStore: progressSpy(uploaded), wrapSource: unsized }).runner.run());
    expect({ code: err.code, status: err.status }).toEqual({ code: "SQLITE_CORRUPT", status: 422 });
    expect(err.message).toContain(`page ${damaged}`);
    expect(uploaded.bytes).toBeGreaterThanOrEqual(2 * MIN_PART_SIZE);
    await expectOnlyEarlier("backups/deep/", earlier);

    // A file source (hashed first, then checked while it uploads straight to its key): the same
    // damage, found after parts were uploaded, leaves nothing either.
    const direct = { bytes: 0 };
    const again = await backupError(setup({ BACKUP_SOURCE: path, BACKUP_NAME: "deep", CHECK: "structure" }, { wrapStore: progressSpy(direct) }).runner.run());
    expect({ code: again.code, message: again.message }).toEqual({ code: err.code, message: err.message });
    expect(direct.bytes).toBeGreaterThanOrEqual(2 * MIN_PART_SIZE);
    await expectOnlyEarlier("backups/deep/", earlier);
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
    const uploaded = { bytes: 0 };
    const manifest = await setup({ BACKUP_SOURCE: path, BACKUP_NAME: "between", CHECK: "structure" }, { wrapSource: meddle, wrapStore: progressSpy(uploaded) }).runner.run();
    expect(opens).toBe(3);
    expect(uploaded.bytes).toBeGreaterThanOrEqual(MIN_PART_SIZE);
    expect(manifest.sha256).toBe(sha256(new Uint8Array(await readFile(path))));
    expect(manifest.readAttempts).toBe(2);
    expect(msgsOf("between").map((l) => l.msg)).toContain("source changed during the read; reading again");
    expect(await s3.keys("backups/between/")).toEqual([manifest.key]);
    expect(await s3.uploads()).toEqual([]);
  });

  it("a URL source cut mid-stream, after parts were uploaded, leaves nothing behind and the error says so; the earlier backup is intact", async () => {
    const earlierPath = join(dir, "cut-earlier.db");
    makeDb(earlierPath, 300, 3000);
    const earlierBytes = await readFile(earlierPath);
    served = (res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" }); // chunked: no length to compare
      res.end(earlierBytes);
    };
    // CHECK=auto: a response without Content-Length is streamed with the structural check.
    const earlier = await setup({ BACKUP_SOURCE: baseUrl, BACKUP_NAME: "cut" }).runner.run();
    expect(earlier.sha256).toBe(sha256(earlierBytes));
    expect(msgsOf("cut").find((l) => l.msg === "image checked")).toMatchObject({ check: "structure" });

    const path = join(dir, "cut.db");
    makeDb(path, 10000, 3000); // ~41 MiB of random bytes
    const bytes = await readFile(path);
    // The body 1 MiB at a time until the S3 server has taken two parts, then the connection is
    // cut. The last MiB is never sent (the pipeline runs several MiB behind the source, so the
    // cut may have to wait there for the parts).
    const uploaded = { bytes: 0 };
    let sent = 0;
    let partsBeforeCut = 0;
    served = (res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes.length) });
      const started = Date.now();
      const step = (): void => {
        if (uploaded.bytes >= 2 * MIN_PART_SIZE || Date.now() - started > 40_000) {
          partsBeforeCut = uploaded.bytes;
          res.destroy();
          return;
        }
        if (sent + MiB >= bytes.length) return void setTimeout(step, 50);
        const more = res.write(bytes.subarray(sent, sent + MiB));
        sent += MiB;
        if (more) setTimeout(step, 20);
        else res.once("drain", () => setTimeout(step, 20));
      };
      step();
    };
    const err = await backupError(setup({ BACKUP_SOURCE: baseUrl, BACKUP_NAME: "cut", CHECK: "structure" }, { wrapStore: progressSpy(uploaded) }).runner.run());
    expect({ code: err.code, status: err.status }).toEqual({ code: "SOURCE_UNREADABLE", status: 502 });
    expect(err.message).toMatch(/Content-Length said/);
    console.log(`cut after ${(sent / MiB).toFixed(0)} of ${(bytes.length / MiB).toFixed(1)} MiB sent, ${(partsBeforeCut / MiB).toFixed(0)} MiB of parts accepted by then`);
    expect(partsBeforeCut).toBeGreaterThanOrEqual(2 * MIN_PART_SIZE);
    expect(sent).toBeLessThan(bytes.length);
    await expectOnlyEarlier("backups/cut/", earlier);
  });

  it("a URL source that changes under the read (a torn copy, found by the check after parts were uploaded) leaves nothing behind; the earlier backup is intact", async () => {
    const { before, torn } = tornPair(join(dir, "torn"));
    expect(sqliteQuickCheck(torn, join(dir, "torn-copy.db"))).not.toBe("ok"); // SQLite itself refuses the torn copy
    served = (res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(before.length) });
      res.end(before);
    };
    const earlier = await setup({ BACKUP_SOURCE: baseUrl, BACKUP_NAME: "torn", CHECK: "structure" }).runner.run();
    expect(earlier.sha256).toBe(sha256(before));
    served = (res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(torn.length) });
      res.end(torn);
    };
    const uploaded = { bytes: 0 };
    const err = await backupError(setup({ BACKUP_SOURCE: baseUrl, BACKUP_NAME: "torn", CHECK: "structure" }, { wrapStore: progressSpy(uploaded) }).runner.run());
    expect({ code: err.code, status: err.status }).toEqual({ code: "SQLITE_CORRUPT", status: 422 });
    expect(uploaded.bytes).toBeGreaterThanOrEqual(2 * MIN_PART_SIZE);
    await expectOnlyEarlier("backups/torn/", earlier);
  });

  it("a file that keeps changing under the read (READ_ATTEMPTS=1), found after parts were uploaded, leaves nothing behind; the earlier backup is intact", async () => {
    const path = join(dir, "changing.db");
    makeDb(path, 6000, 3000);
    const env = { BACKUP_SOURCE: path, BACKUP_NAME: "changing", CHECK: "structure", READ_ATTEMPTS: "1" };
    const earlier = await setup(env).runner.run();
    // After the first chunk, a writer commits (rollback journal: the main file changes); the
    // read goes on to the end, and the change is seen when the source settles.
    // No size up front (as a URL or S3 source): the read is the upload's, not a first look.
    const meddle = (source: Source): Source => ({
      origin: source.origin,
      read: (o) => source.read(o),
      open: async (o) => {
        const opened = await source.open(o);
        const reader = opened.stream.getReader();
        let first = true;
        const stream = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const { done, value } = await reader.read();
            if (done) return controller.close();
            controller.enqueue(value);
            if (first) execFileSync("sqlite3", [path, "UPDATE t SET name = 'changed' WHERE id = 1;"]);
            first = false;
          },
        });
        return { ...opened, stream };
      },
    });
    const uploaded = { bytes: 0 };
    const err = await backupError(setup(env, { wrapSource: meddle, wrapStore: progressSpy(uploaded) }).runner.run());
    expect({ code: err.code, status: err.status }).toEqual({ code: "SOURCE_CHANGED", status: 409 });
    expect(err.message).toMatch(/modified during the read/);
    expect(uploaded.bytes).toBeGreaterThanOrEqual(2 * MIN_PART_SIZE);
    await expectOnlyEarlier("backups/changing/", earlier);
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
