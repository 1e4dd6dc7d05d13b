/**
 * The file source on WAL databases written by a real SQLite process (the sqlite3 CLI) that
 * keeps its connection open while we read, as an application does: the committed part of
 * DB-wal is in the image, nothing else is; and a whole backup of such a database restores
 * to what SQLite itself reads from the same files.
 */
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../../functions/node-runtime.js";
import { insertRows, ITEMS_TABLE, sessionFingerprint, walkWal } from "../../scripts/make-wal-fixtures.js";
import { createBackupRunner } from "../../src/backup.js";
import { parseConfig } from "../../src/config.js";
import { jsonLogger } from "../../src/log.js";
import { createSource } from "../../src/sources/index.js";
import { fileSource } from "../../src/sources/file.js";
import { markRollbackJournal } from "../../src/sqlite/header.js";
import { walChecksum } from "../../src/sqlite/wal.js";
import { createS3Store } from "../../src/store/s3.js";
import { dumpTables, integrityCheck, sha256, sqliteCli } from "../helpers/db.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";
import { mulberry32 } from "../helpers/random.js";
import { openSqliteSession, type SqliteSession } from "../helpers/sqlite-session.js";
import { fingerprintOf, fixtureIndex, loadWalFixture, sqliteDumpOfImage, sqliteReads, tablesOfDump, WAL_FIXTURES } from "../helpers/wal.js";
import { backupError } from "../helpers/errors.js";
import { capturedLines } from "../helpers/log-capture.js";

const cli = sqliteCli();
const MAX = 1e9;
let dir: string;
const open: SqliteSession[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-file-wal-"));
});
afterEach(async () => {
  // Sessions a failed test left open.
  await Promise.all(open.splice(0).map((s) => s.kill()));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * A WAL-mode database with 30 rows checkpointed into the main file, held open by a sqlite3
 * process: everything written through `session` from now on stays in DB-wal.
 */
async function liveWalDatabase(name: string): Promise<{ path: string; session: SqliteSession }> {
  if (!cli) throw new Error("a live WAL database needs a real SQLite process: install the sqlite3 CLI (apt-get install sqlite3)");
  const path = join(dir, `${name}.db`);
  const session = openSqliteSession(path);
  open.push(session);
  await session.exec("PRAGMA page_size = 1024");
  expect((await session.exec("PRAGMA journal_mode = WAL")).trim()).toBe("wal");
  await session.exec(`PRAGMA wal_autocheckpoint = 0; ${ITEMS_TABLE}; CREATE INDEX items_txn ON items (txn, body); ${insertRows(0, 30, 200)}`);
  await session.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return { path, session };
}

/** The two files as they are now, and the independent walk of the WAL. */
async function filesNow(path: string) {
  const db = new Uint8Array(await readFile(path));
  const wal = new Uint8Array(await readFile(`${path}-wal`));
  return { db, wal, walked: walkWal(wal) };
}

/** sql.js opens only rollback-journal images (the snapshot step marks them so). */
function marked(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  markRollbackJournal(copy);
  return copy;
}


describe("file source: WAL databases held open by a real SQLite", () => {
  it("includes the committed rows that exist only in DB-wal, including pages past the main file", async () => {
    const { path, session } = await liveWalDatabase("live");
    const base = await sessionFingerprint(session);
    await session.exec(`BEGIN; ${insertRows(1, 10, 150)}; COMMIT`);
    await session.exec("BEGIN; UPDATE items SET body = body || '+u' WHERE txn = 0 AND id % 2 = 0; COMMIT");
    await session.exec(`BEGIN; ${insertRows(2, 25, 300)}; COMMIT`);
    await session.exec("BEGIN; DELETE FROM items WHERE txn = 1 AND id % 3 = 0; COMMIT");
    const committed = await sessionFingerprint(session);

    const { db, wal, walked } = await filesNow(path);
    expect(wal.length).toBeGreaterThan(0);
    expect(walked.commits).toBe(4);
    expect(walked.frames.some((f) => f.page > db.length / 1024)).toBe(true);
    // The main file alone is the old state: without the WAL the newest rows are lost.
    expect(await fingerprintOf(marked(db))).toBe(base);
    expect(base).not.toBe(committed);

    const image = await fileSource(nodeFiles, path).read({ maxBytes: MAX });
    expect(image.attempts).toBe(1);
    expect(image.wal).toEqual({ bytes: wal.length, committedFrames: walked.committedFrames, commits: 4, uncommittedFrames: 0, ignoredBytes: 0 });
    expect(image.bytes.length).toBe(walked.frames[walked.committedFrames - 1]!.commit * 1024);
    expect(await fingerprintOf(marked(image.bytes))).toBe(committed);
    expect(await integrityCheck(marked(image.bytes))).toBe("ok");
    if (cli) {
      const sqlite = sqliteReads(db, wal);
      expect(sqliteDumpOfImage(marked(image.bytes))).toEqual(sqlite);
    }
    await session.close();
  });

  it("leaves out an open transaction's frames that SQLite spilled into DB-wal, and includes them once it commits", async () => {
    const { path, session } = await liveWalDatabase("tail");
    await session.exec(`BEGIN; ${insertRows(1, 10, 150)}; COMMIT`);
    await session.exec("BEGIN; DELETE FROM items WHERE id <= 4; COMMIT");
    const committed = await sessionFingerprint(session);
    const before = await filesNow(path);
    // Too big for a 5-page cache: dirty pages go to the WAL before any commit.
    await session.exec(`PRAGMA cache_size = 5; BEGIN; ${insertRows(9, 8, 2500)}`);

    const { db, wal, walked } = await filesNow(path);
    expect(wal.length).toBeGreaterThan(before.wal.length);
    expect(walked.committedFrames).toBe(before.walked.committedFrames);
    const valid = walked.frames.filter((f) => f.valid).length;
    expect(valid).toBeGreaterThan(walked.committedFrames);

    const image = await fileSource(nodeFiles, path).read({ maxBytes: MAX });
    const frameBytes = 24 + 1024;
    expect(image.wal).toEqual({
      bytes: wal.length,
      committedFrames: walked.committedFrames,
      commits: 2,
      uncommittedFrames: valid - walked.committedFrames,
      ignoredBytes: wal.length - 32 - valid * frameBytes,
    });
    expect(await fingerprintOf(marked(image.bytes))).toBe(committed);
    expect(await integrityCheck(marked(image.bytes))).toBe("ok");
    if (cli) expect(sqliteDumpOfImage(marked(image.bytes))).toEqual(sqliteReads(db, wal));

    await session.exec("COMMIT");
    const after = await fileSource(nodeFiles, path).read({ maxBytes: MAX });
    expect(after.wal).toMatchObject({ commits: 3, uncommittedFrames: 0 });
    expect(await fingerprintOf(marked(after.bytes))).toBe(await sessionFingerprint(session));
    expect(await fingerprintOf(marked(after.bytes))).toMatch(/ 9:8:20000$/);
    await session.close();
  });

  it("reads each fixture's pair of files as SQLite does, with the WAL summary of what was applied and ignored", async () => {
    for (const [name, entry] of Object.entries(fixtureIndex.fixtures)) {
      const path = join(dir, `fixture-${name}.db`);
      await copyFile(join(WAL_FIXTURES, `${name}.db`), path);
      await copyFile(join(WAL_FIXTURES, `${name}.db-wal`), `${path}-wal`);
      const image = await fileSource(nodeFiles, path).read({ maxBytes: MAX });
      const frameBytes = 24 + entry.pageSize;
      expect(image.wal, name).toEqual({
        bytes: entry.walBytes,
        committedFrames: entry.committedFrames,
        commits: entry.transactions.length,
        uncommittedFrames: entry.uncommittedFrames,
        ignoredBytes: entry.walBytes - 32 - (entry.committedFrames + entry.uncommittedFrames) * frameBytes,
      });
      expect(image.bytes.length, name).toBe(entry.committedPages * entry.pageSize);
      const fixture = loadWalFixture(name);
      expect(await fingerprintOf(marked(image.bytes)), name).toBe(entry.states.at(-1));
      expect(await dumpTables(marked(image.bytes)), name).toEqual(await tablesOfDump(fixture.expectedSql));
      if (cli) expect(sqliteDumpOfImage(marked(image.bytes)).dump, name).toBe(fixture.expectedSql);
    }
  });

  it("ignores a WAL SQLite would ignore (garbage, a broken header checksum, 0 bytes) and says why", async () => {
    const fixture = loadWalFixture("committed");
    const random = mulberry32(0x9a7b);
    const garbage = Uint8Array.from({ length: 5000 }, () => Math.floor(random() * 256));
    const brokenHeader = fixture.wal.slice();
    brokenHeader[20]! ^= 0x01;
    const cases = [
      { what: "garbage", wal: garbage, because: /^bad magic 0x/ },
      { what: "header checksum", wal: brokenHeader, because: /^header checksum mismatch$/ },
      { what: "a header fragment", wal: fixture.wal.slice(0, 20), because: /^only 20 bytes/ },
    ];
    for (const c of cases) {
      const path = join(dir, `ignored-${c.what.replace(/ /g, "-")}.db`);
      await writeFile(path, fixture.db);
      await writeFile(`${path}-wal`, c.wal);
      const image = await fileSource(nodeFiles, path).read({ maxBytes: MAX });
      expect(image.wal, c.what).toEqual({ bytes: c.wal.length, committedFrames: 0, commits: 0, uncommittedFrames: 0, ignoredBytes: c.wal.length, ignoredBecause: expect.stringMatching(c.because) });
      expect(sha256(image.bytes), c.what).toBe(sha256(fixture.db));
      expect(await fingerprintOf(marked(image.bytes))).toBe(fixture.entry.states[0]);
      if (cli) expect(sqliteReads(fixture.db, c.wal)).toEqual(sqliteDumpOfImage(marked(image.bytes)));
    }
    // An empty DB-wal is no WAL at all: no summary.
    const path = join(dir, "ignored-empty.db");
    await writeFile(path, fixture.db);
    await writeFile(`${path}-wal`, new Uint8Array(0));
    const image = await fileSource(nodeFiles, path).read({ maxBytes: MAX });
    expect(image.wal).toBeUndefined();
    expect(sha256(image.bytes)).toBe(sha256(fixture.db));
  });

  it("refuses a WAL whose page size differs from the database's: SQLITE_CORRUPT", async () => {
    for (const [main, walOf] of [
      ["committed", "page64k"],
      ["page64k", "committed"],
    ] as const) {
      const path = join(dir, `mismatch-${main}.db`);
      await copyFile(join(WAL_FIXTURES, `${main}.db`), path);
      await copyFile(join(WAL_FIXTURES, `${walOf}.db-wal`), `${path}-wal`);
      const err = await backupError(fileSource(nodeFiles, path).read({ maxBytes: MAX }));
      expect(err.code).toBe("SQLITE_CORRUPT");
      expect(err.status).toBe(422);
      expect(err.message).toMatch(/-wal has (65536|1024)-byte pages but .* has (1024|65536)-byte pages/);
    }
  });

  it("refuses a WAL of an unknown format version, as SQLite refuses to open the database: SOURCE_UNSUPPORTED", async () => {
    const fixture = loadWalFixture("committed");
    const wal = fixture.wal.slice();
    new DataView(wal.buffer).setUint32(4, 3007001);
    const [c1, c2] = walChecksum(wal, 0, 24, false, 0, 0);
    new DataView(wal.buffer).setUint32(24, c1);
    new DataView(wal.buffer).setUint32(28, c2);
    const path = join(dir, "future-wal.db");
    await writeFile(path, fixture.db);
    await writeFile(`${path}-wal`, wal);
    const err = await backupError(fileSource(nodeFiles, path).read({ maxBytes: MAX }));
    expect(err.code).toBe("SOURCE_UNSUPPORTED");
    expect(err.message).toMatch(/unknown WAL format version 3007001/);
  });

  it("reads a 0-byte main file as empty even beside a WAL, as SQLite does", async () => {
    const path = join(dir, "empty-main.db");
    await writeFile(path, new Uint8Array(0));
    await copyFile(join(WAL_FIXTURES, "committed.db-wal"), `${path}-wal`);
    const image = await fileSource(nodeFiles, path).read({ maxBytes: MAX });
    expect(image.bytes.length).toBe(0);
    expect(image.wal).toMatchObject({ committedFrames: 0, ignoredBecause: expect.stringMatching(/empty/) });
  });

  it("refuses when the main file with its committed WAL is over MAX_BYTES, though each file alone fits", async () => {
    const { path, session } = await liveWalDatabase("limit");
    // One transaction of new pages: the WAL holds each once, the database grows by all of them.
    await session.exec(`BEGIN; ${insertRows(1, 40, 600)}; COMMIT`);
    const { db, wal, walked } = await filesNow(path);
    const committedBytes = walked.frames[walked.committedFrames - 1]!.commit * 1024;
    const maxBytes = committedBytes - 1;
    expect(db.length).toBeLessThanOrEqual(maxBytes);
    expect(wal.length).toBeLessThanOrEqual(maxBytes);
    const err = await backupError(fileSource(nodeFiles, path).read({ maxBytes }));
    expect(err.code).toBe("SOURCE_TOO_LARGE");
    expect(err.message).toMatch(/with its committed WAL is \d+ bytes, over MAX_BYTES/);
    expect((await fileSource(nodeFiles, path).read({ maxBytes: committedBytes })).bytes.length).toBe(committedBytes);
    await session.close();
  });
});

describe("backup of a live WAL database", () => {
  let s3: TestStore;
  beforeAll(async () => {
    s3 = await startTestStore();
  });
  afterAll(async () => {
    await s3?.close();
  });

  it("uploads the committed state, WAL included, while the writer keeps its connection open; it restores to what SQLite reads", async () => {
    const { path, session } = await liveWalDatabase("backup-live");
    await session.exec(`BEGIN; ${insertRows(1, 12, 150)}; COMMIT`);
    await session.exec(`BEGIN; ${insertRows(2, 20, 300)}; COMMIT`);
    await session.exec("BEGIN; DELETE FROM items WHERE txn = 0 AND id > 25; COMMIT");
    const committed = await sessionFingerprint(session);
    const { db, wal, walked } = await filesNow(path);
    expect((await stat(`${path}-wal`)).size).toBeGreaterThan(0);
    expect(walked.commits).toBe(3);

    const logs = capturedLines("backup log");
    const runtime = await createNodeRuntime(jsonLogger({ write: (line) => logs.push(line), level: "debug" }));
    const config = parseConfig(s3.env({ BACKUP_SOURCE: path, BACKUP_NAME: "live-wal", CHECK: "full", VERIFY: "full" }), { maxBytes: NODE_MAX_BYTES });
    const store = createS3Store(config.s3);
    const source = createSource(config.source, { files: nodeFiles }, { readAttempts: config.readAttempts });
    const manifest = await createBackupRunner({ config, runtime, store, source }).run();

    expect(manifest.walFrames).toBe(walked.committedFrames);
    expect(manifest.walFrames).toBeGreaterThan(0);
    expect(manifest.pageCount).toBe(walked.frames[walked.committedFrames - 1]!.commit);
    const applied = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "WAL applied");
    expect(applied).toMatchObject({ commits: 3, committedFrames: walked.committedFrames, uncommittedFrames: 0, ignoredBytes: 0 });

    const gz = new Uint8Array(await new Response(await store.get(manifest.key)).arrayBuffer());
    expect(gz.length).toBe(manifest.gzipBytes);
    const restored = new Uint8Array(gunzipSync(gz));
    expect(sha256(restored)).toBe(manifest.sha256);
    expect(restored.length).toBe(manifest.bytes);
    expect([restored[18], restored[19]]).toEqual([1, 1]);
    expect(await integrityCheck(restored)).toBe("ok");
    expect(await fingerprintOf(restored)).toBe(committed);

    if (cli) {
      // SQLite's own reading of the files as they were during the backup (the writer was idle).
      const sqlite = sqliteReads(db, wal);
      const restoredPath = join(dir, "backup-live.restored.db");
      await writeFile(restoredPath, restored);
      // A rollback-journal file and a WAL-mode one dump the same: .dump has no journal_mode line.
      expect(cli(restoredPath, ".dump")).toBe(("dump" in sqlite ? sqlite.dump : sqlite.error).trim());
      expect(cli(restoredPath, "PRAGMA journal_mode")).toBe("delete");
    }
    // The writer is still there and unaffected.
    expect(await sessionFingerprint(session)).toBe(committed);
    await session.close();
  });
});
