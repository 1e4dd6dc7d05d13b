import { appendFile, mkdir, mkdtemp, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { nodeFiles } from "../../functions/node-runtime.js";
import { DEFAULT_READ_ATTEMPTS, fileSource, retryDelayMs, type FileSourceOptions } from "../../src/sources/file.js";
import { READ_CHUNK_BYTES, type RetryInfo } from "../../src/sources/source.js";
import { dumpTables, integrityCheck, sha256, sqliteCli, writeDatabase } from "../helpers/db.js";
import { mulberry32 } from "../helpers/random.js";
import { openSqliteSession, type SqliteSession } from "../helpers/sqlite-session.js";
import { backupError } from "../helpers/errors.js";
import { filesWith } from "../helpers/files.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-file-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Sessions a test opened; closed (or killed) after it, pass or fail.
const sessions: SqliteSession[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close().catch(() => s.kill());
});
function session(path: string): SqliteSession {
  const s = openSqliteSession(path);
  sessions.push(s);
  return s;
}


function cli(): (dbPath: string, sql: string) => string {
  const run = sqliteCli();
  if (!run) throw new Error("these tests need the sqlite3 CLI (apt-get install sqlite3)");
  return run;
}

const JOURNAL_MAGIC = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
const MAX = 2 ** 32 - 1;
// A fixed mtime (whole seconds, so it round-trips exactly) for tests that put a file's mtime back.
const FIXED_MTIME = 1_700_000_000;

/** Waits recorded instead of taken, and the retries reported through onRetry. */
function recorder(random: () => number = () => 0.5) {
  const delays: number[] = [];
  const retries: RetryInfo[] = [];
  const options: FileSourceOptions = { sleep: async (ms) => void delays.push(ms), random };
  return { delays, retries, options, onRetry: (info: RetryInfo) => void retries.push(info) };
}

const changeCounter = (db: Uint8Array) => Buffer.from(db.subarray(24, 28)).readUInt32BE(0);

/** A rollback-journal database made by sqlite3: t(id, v) with `rows` rows "old-<id>" (fixed width, so updates keep the size). */
async function rollbackDb(name: string, rows = 300): Promise<string> {
  const path = join(dir, name);
  cli()(
    path,
    `PRAGMA journal_mode=DELETE; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${rows}) INSERT INTO t(v) SELECT printf('old-%05d', i) FROM c;`,
  );
  return path;
}

describe("file source", () => {
  it("reads a file larger than one chunk exactly, reporting progress", async () => {
    const path = join(dir, "big.db");
    const bytes = await writeDatabase(path, { targetBytes: 2.5 * READ_CHUNK_BYTES });
    const progress: number[] = [];
    const image = await fileSource(nodeFiles, path).read({ maxBytes: MAX, onProgress: (n) => progress.push(n) });
    expect(image.bytes.length).toBe(bytes.length);
    expect(sha256(image.bytes)).toBe(sha256(bytes));
    expect(image.origin).toBe(`file ${path}`);
    expect(image.attempts).toBe(1);
    expect(progress.length).toBe(Math.ceil(bytes.length / READ_CHUNK_BYTES));
    expect(progress.at(-1)).toBe(bytes.length);
  });

  it("refuses a directory, a missing file and a file over the limit", async () => {
    await mkdir(join(dir, "adir.db"));
    expect((await backupError(fileSource(nodeFiles, join(dir, "adir.db")).read({ maxBytes: 1e9 }))).code).toBe("SOURCE_UNREADABLE");
    expect((await backupError(fileSource(nodeFiles, join(dir, "nope.db")).read({ maxBytes: 1e9 }))).code).toBe("SOURCE_NOT_FOUND");
    const path = join(dir, "limit.db");
    await writeDatabase(path, { rows: 50 });
    const tooLarge = await backupError(fileSource(nodeFiles, path).read({ maxBytes: 4096 }));
    expect(tooLarge.code).toBe("SOURCE_TOO_LARGE");
    expect(tooLarge.status).toBe(413);
  });

  it("accepts an empty WAL and a zeroed (persisted) journal; a journal that stays hot ends in HOT_JOURNAL after READ_ATTEMPTS reads", async () => {
    const path = join(dir, "journal.db");
    const bytes = await writeDatabase(path, { rows: 5 });
    await writeFile(`${path}-wal`, "");
    await writeFile(`${path}-journal`, new Uint8Array(512));
    const calm = recorder();
    const image = await fileSource(nodeFiles, path, calm.options).read({ maxBytes: 1e9, onRetry: calm.onRetry });
    expect(sha256(image.bytes)).toBe(sha256(bytes));
    expect(image.attempts).toBe(1);
    expect(calm.delays).toEqual([]);

    const hot = new Uint8Array(512);
    hot.set(JOURNAL_MAGIC);
    await writeFile(`${path}-journal`, hot);
    const r = recorder();
    const err = await backupError(fileSource(nodeFiles, path, { ...r.options, attempts: 4 }).read({ maxBytes: 1e9, onRetry: r.onRetry }));
    expect(err.code).toBe("HOT_JOURNAL");
    expect(err.status).toBe(409);
    expect(err.message).toMatch(/-journal is a live rollback journal: a transaction is being written on each of 4 attempts over [\d.]+ s\./);
    expect(err.message).toMatch(/opening the database once with sqlite3 rolls it back/);
    // Three waits between four reads, doubling from 100 ms (random() = 0.5: no jitter).
    expect(r.delays).toEqual([100, 200, 400]);
    expect(r.retries.map((x) => [x.attempt, x.attempts, x.delayMs])).toEqual([
      [1, 4, 100],
      [2, 4, 200],
      [3, 4, 400],
    ]);
    for (const x of r.retries) expect(x.reason).toMatch(/live rollback journal/);
  });

  it("reads again a file that grows while it is read, and returns the grown file", async () => {
    const path = join(dir, "growing.db");
    await writeDatabase(path, { targetBytes: 2 * READ_CHUNK_BYTES });
    let appended = false;
    // A real append landing after the first chunk of the copy, once.
    const files = filesWith(async ({ path: p, copy }) => {
      if (!appended && copy && p === path) {
        appended = true;
        await appendFile(path, new Uint8Array(4096));
      }
    });
    const r = recorder();
    const image = await fileSource(files, path, r.options).read({ maxBytes: 1e9, onRetry: r.onRetry });
    expect(appended).toBe(true);
    expect(image.attempts).toBe(2);
    expect(sha256(image.bytes)).toBe(sha256(await readFile(path)));
    expect(r.retries).toEqual([{ attempt: 1, attempts: DEFAULT_READ_ATTEMPTS, reason: `${path} was modified during the read`, delayMs: 100 }]);
    expect(r.delays).toEqual([100]);
  });
});

describe("retry delays", () => {
  it("double from 100 ms, stop at 3 s, and jitter between 0.5× and 1.5× of that", () => {
    const bases = [100, 200, 400, 800, 1600, 3000, 3000, 3000, 3000, 3000];
    expect(bases.map((_, i) => retryDelayMs(i + 1, () => 0.5))).toEqual(bases);
    expect(retryDelayMs(1, () => 0)).toBe(50);
    expect(retryDelayMs(1, () => 0.999_999)).toBe(150);
    expect(retryDelayMs(30, () => 0)).toBe(1500);
    expect(retryDelayMs(30, () => 0.999_999)).toBe(4500);
    const random = mulberry32(5);
    const seen = new Set<number>();
    for (let attempt = 1; attempt <= 12; attempt++) {
      const base = bases[Math.min(attempt, bases.length) - 1]!;
      for (let i = 0; i < 200; i++) {
        const d = retryDelayMs(attempt, random);
        expect(d).toBeGreaterThanOrEqual(base / 2);
        expect(d).toBeLessThanOrEqual(base * 1.5);
        if (attempt === 3) seen.add(d);
      }
    }
    // Jittered: not a handful of fixed values.
    expect(seen.size).toBeGreaterThan(50);
  });
});

describe("torn reads of a rollback-journal database", () => {
  it("reads again when a real write changes the file in place during the copy (same size, same mtime: the header's change counter tells)", async () => {
    const path = await rollbackDb("inplace.db");
    await utimes(path, FIXED_MTIME, FIXED_MTIME);
    const before = await readFile(path);
    let written = false;
    const files = filesWith(({ path: p, copy }) => {
      if (written || !copy || p !== path) return;
      written = true;
      cli()(path, "UPDATE t SET v = printf('new-%05d', id) WHERE id <= 50");
      return utimes(path, FIXED_MTIME, FIXED_MTIME);
    });
    const r = recorder();
    const image = await fileSource(files, path, r.options).read({ maxBytes: MAX, onRetry: r.onRetry });

    const after = await readFile(path);
    // What the test is about: only the content and the header's change counter moved.
    expect(after.length).toBe(before.length);
    expect((await stat(path)).mtimeMs).toBe(FIXED_MTIME * 1000);
    expect(changeCounter(after)).toBe(changeCounter(before) + 1);
    expect(sha256(after)).not.toBe(sha256(before));

    expect(image.attempts).toBe(2);
    expect(r.retries).toEqual([{ attempt: 1, attempts: DEFAULT_READ_ATTEMPTS, reason: `${path} was modified during the read`, delayMs: 100 }]);
    expect(r.delays).toEqual([100]);
    expect(sha256(image.bytes)).toBe(sha256(after));
    expect((await dumpTables(image.bytes)).t?.slice(0, 2)).toEqual([
      [1, "new-00001"],
      [2, "new-00002"],
    ]);
  });

  it("waits while a transaction has a hot journal (uncommitted pages already in the file), then reads the committed state", async () => {
    const path = await rollbackDb("hot.db", 10);
    const writer = session(path);
    // A transaction larger than its page cache spills: the journal goes hot and
    // uncommitted pages are written into the database file before COMMIT.
    await writer.exec("PRAGMA cache_size = 5; BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300) INSERT INTO t(v) SELECT hex(randomblob(500)) FROM c;");
    expect([...(await readFile(`${path}-journal`)).subarray(0, 8)]).toEqual(JOURNAL_MAGIC);

    const delays: number[] = [];
    const retries: RetryInfo[] = [];
    const source = fileSource(nodeFiles, path, {
      random: () => 0.5,
      sleep: async (ms) => {
        delays.push(ms);
        // The journal is gone for the third look: the writer commits during the second wait.
        if (delays.length === 2) await writer.exec("COMMIT");
      },
    });
    const image = await source.read({ maxBytes: MAX, onRetry: (x) => void retries.push(x) });
    expect(image.attempts).toBe(3);
    expect(delays).toEqual([100, 200]);
    expect(retries.map((x) => x.reason)).toEqual([
      `${path}-journal is a live rollback journal: a transaction is being written`,
      `${path}-journal is a live rollback journal: a transaction is being written`,
    ]);
    expect(await integrityCheck(image.bytes)).toBe("ok");
    expect((await dumpTables(image.bytes)).t).toHaveLength(310);
    expect(sha256(image.bytes)).toBe(sha256(await readFile(path)));
  });

  it("gives up with SOURCE_CHANGED, naming the attempts and READ_ATTEMPTS, when every copy sees a write", async () => {
    const path = await rollbackDb("busy.db");
    let writes = 0;
    const files = filesWith(({ path: p, copy }) => {
      if (!copy || p !== path) return;
      writes++;
      cli()(path, `UPDATE t SET v = printf('w%d-%03d', ${writes % 10}, id) WHERE id = ${writes}`);
    });
    const r = recorder(mulberry32(11));
    const expected = mulberry32(11);
    const err = await backupError(fileSource(files, path, { ...r.options, attempts: 3 }).read({ maxBytes: MAX, onRetry: r.onRetry }));
    expect(err.code).toBe("SOURCE_CHANGED");
    expect(err.status).toBe(409);
    expect(err.message).toMatch(
      new RegExp(`^file ${path} kept changing while it was read \\(3 attempts over [\\d.]+ s; last: ${path} was modified during the read\\)\\. .*raise READ_ATTEMPTS\\.$`),
    );
    expect(writes).toBe(3);
    expect(r.delays).toEqual([retryDelayMs(1, expected), retryDelayMs(2, expected)]);
    expect(r.retries.map((x) => [x.attempt, x.attempts])).toEqual([
      [1, 3],
      [2, 3],
    ]);
  });

  it("reads again when the file is replaced by rename during the copy (same size, header and mtime: only the inode differs)", async () => {
    const path = await rollbackDb("renamed.db");
    await utimes(path, FIXED_MTIME, FIXED_MTIME);
    const original = await readFile(path);
    // The same header, one different byte in the last page (a row's text).
    const replacement = Buffer.from(original);
    const at = replacement.lastIndexOf(Buffer.from("old-00300"));
    expect(at).toBeGreaterThan(4096);
    replacement.write("new", at, "latin1");
    let replaced = false;
    const files = filesWith(async ({ path: p, copy }) => {
      if (replaced || !copy || p !== path) return;
      replaced = true;
      await writeFile(`${path}.tmp`, replacement);
      await utimes(`${path}.tmp`, FIXED_MTIME, FIXED_MTIME);
      await rename(`${path}.tmp`, path);
    });
    const r = recorder();
    const image = await fileSource(files, path, r.options).read({ maxBytes: MAX, onRetry: r.onRetry });
    expect(replaced).toBe(true);
    expect(image.attempts).toBe(2);
    expect(r.retries.map((x) => x.reason)).toEqual([`${path} was modified during the read`]);
    expect(Buffer.from(image.bytes).equals(replacement)).toBe(true);
    expect((await dumpTables(image.bytes)).t?.at(-1)).toEqual([300, "new-00300"]);
  });
});

describe("torn reads of a WAL-mode database (a live sqlite3 connection)", () => {
  const ROW_BYTES = 4000; // one row per 4 KiB page

  /** t(id, v) in WAL mode, `rows` pages of rows, checkpointed into the main file; the connection stays open with autocheckpoint off. */
  async function walDb(name: string, rows: number): Promise<{ path: string; writer: SqliteSession }> {
    const path = join(dir, name);
    const writer = session(path);
    await writer.exec(
      `PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
       WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${rows}) INSERT INTO t(v) SELECT randomblob(${ROW_BYTES}) FROM c;
       PRAGMA wal_checkpoint(PASSIVE);`,
    );
    return { path, writer };
  }
  const walHeader = async (path: string) => (await readFile(`${path}-wal`)).subarray(0, 32);

  it("accepts a copy during which a checkpoint wrote the main file, since the WAL read after it covers every page it wrote", async () => {
    // Over one read chunk, so that the checkpoint lands between two chunks of the copy.
    const rows = Math.ceil((1.25 * READ_CHUNK_BYTES) / 4096);
    const { path, writer } = await walDb("ckpt.db", rows);
    // Committed in the WAL only: changes near the start and the end of the file, and growth.
    await writer.exec(
      `UPDATE t SET v = zeroblob(${ROW_BYTES}) WHERE id IN (3, ${rows - 3});
       INSERT INTO t(v) SELECT randomblob(${ROW_BYTES}) FROM t WHERE id <= 20;`,
    );
    const mainBefore = await readFile(path);
    const headerBefore = await walHeader(path);
    let checkpointed = false;
    const files = filesWith(async ({ path: p, copy, n }) => {
      if (p === path && copy && n === 1) {
        checkpointed = true;
        // PASSIVE copies the frames into the main file but does not restart the WAL.
        expect(await writer.exec("PRAGMA wal_checkpoint(PASSIVE)")).toMatch(/^0\|\d+\|\d+\n$/);
      }
    });
    const r = recorder();
    const image = await fileSource(files, path, r.options).read({ maxBytes: MAX, onRetry: r.onRetry });

    const mainAfter = await readFile(path);
    expect(checkpointed).toBe(true);
    expect(mainAfter.length).toBeGreaterThanOrEqual(mainBefore.length + 20 * 4096);
    // The checkpoint changed both the part already copied and the part still to copy.
    expect(mainAfter.subarray(0, READ_CHUNK_BYTES).equals(mainBefore.subarray(0, READ_CHUNK_BYTES))).toBe(false);
    expect(mainAfter.subarray(READ_CHUNK_BYTES, mainBefore.length).equals(mainBefore.subarray(READ_CHUNK_BYTES))).toBe(false);
    expect((await walHeader(path)).equals(headerBefore)).toBe(true);

    expect(image.attempts).toBe(1);
    expect(r.retries).toEqual([]);
    expect(image.wal?.commits).toBe(2);
    // Everything is checkpointed now: the main file alone is the database the image must equal.
    expect(sha256(image.bytes.subarray(100))).toBe(sha256(mainAfter.subarray(100)));
    expect(await integrityCheck(image.bytes)).toBe("ok");
    const t = (await dumpTables(image.bytes)).t!;
    expect(t).toHaveLength(rows + 20);
    expect(t[2]?.[1]).toBe("00".repeat(ROW_BYTES));
    expect(t[rows - 4]?.[1]).toBe("00".repeat(ROW_BYTES));
  });

  it("accepts a copy during which a transaction was appended to the WAL, and includes it", async () => {
    const { path, writer } = await walDb("append.db", 50);
    // A first commit starts a WAL generation; the one during the read is appended to it.
    await writer.exec(`UPDATE t SET v = x'00' WHERE id = 1`);
    const headerBefore = await walHeader(path);
    const files = filesWith(async ({ path: p, copy, n }) => {
      if (p === path && copy && n === 1) await writer.exec(`INSERT INTO t(id, v) VALUES (1000, x'c0ffee')`);
    });
    const r = recorder();
    const image = await fileSource(files, path, r.options).read({ maxBytes: MAX, onRetry: r.onRetry });
    expect((await walHeader(path)).equals(headerBefore)).toBe(true);
    expect(image.attempts).toBe(1);
    expect(r.retries).toEqual([]);
    expect(image.wal?.commits).toBe(2);
    const t = (await dumpTables(image.bytes)).t!;
    expect(t[0]).toEqual([1, "00"]);
    expect(t.at(-1)).toEqual([1000, "c0ffee"]);
  });

  it("reads again when the WAL is restarted (new salts) during the copy, though its size did not change", async () => {
    const { path, writer } = await walDb("restart.db", 50);
    // Everything is in the main file; the next write starts the WAL over from its first frame.
    const mainBefore = await readFile(path);
    const walBefore = await readFile(`${path}-wal`);
    let restarted = false;
    const files = filesWith(async ({ path: p, copy }) => {
      if (restarted || !copy || p !== path) return;
      restarted = true;
      await writer.exec(`INSERT INTO t(id, v) VALUES (1000, x'c0ffee')`);
    });
    const r = recorder();
    const image = await fileSource(files, path, r.options).read({ maxBytes: MAX, onRetry: r.onRetry });

    const walAfter = await readFile(`${path}-wal`);
    expect(restarted).toBe(true);
    expect(walAfter.length).toBe(walBefore.length);
    expect(walAfter.subarray(16, 24).equals(walBefore.subarray(16, 24))).toBe(false); // salts
    expect((await readFile(path)).equals(mainBefore)).toBe(true);

    expect(image.attempts).toBe(2);
    expect(r.retries.map((x) => x.reason)).toEqual([`${path}-wal was restarted or rewritten during the read`]);
    expect(image.wal?.commits).toBe(1);
    expect(await integrityCheck(image.bytes)).toBe("ok");
    const t = (await dumpTables(image.bytes)).t!;
    expect(t).toHaveLength(51);
    expect(t.at(-1)).toEqual([1000, "c0ffee"]);
  });

  it("reads again when the WAL is restarted between two chunks of the WAL copy (the copy would mix a checkpointed file with an older WAL prefix)", async () => {
    const path = join(dir, "walchunks.db");
    const writer = session(path);
    await writer.exec(
      `PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
       CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT);
       INSERT INTO u VALUES (1, 'c0'); INSERT INTO t(v) SELECT randomblob(${ROW_BYTES}) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3);
       PRAGMA wal_checkpoint(PASSIVE);`,
    );
    const insertRows = (n: number) =>
      `INSERT INTO t(v) SELECT randomblob(${ROW_BYTES}) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${n}) SELECT i FROM c);`;
    // One WAL generation over one read chunk (8 MiB ≈ 2036 frames): C1 (touches u) ends in the
    // first chunk; C2 (touches u and t's first leaf, which C1 did not) lies in the second.
    await writer.exec(`BEGIN; UPDATE u SET v = 'c1'; ${insertRows(1200)} COMMIT;`);
    await writer.exec(insertRows(1000));
    await writer.exec(`BEGIN; UPDATE u SET v = 'c2'; UPDATE t SET v = zeroblob(${ROW_BYTES}) WHERE id = 1; COMMIT;`);
    expect((await stat(`${path}-wal`)).size).toBeGreaterThan(READ_CHUNK_BYTES + 4120);

    const events: string[] = [];
    const files = filesWith(async ({ path: p, copy, n }) => {
      if (p === path && !copy && n === 1) {
        // Right after the first look at the main file: a complete checkpoint (the WAL header stays).
        events.push("checkpoint");
        await writer.exec("PRAGMA wal_checkpoint(PASSIVE)");
      } else if (p === `${path}-wal` && copy && n === 1) {
        // Between the WAL's two chunks: a transaction larger than a chunk restarts the WAL and overwrites its second chunk.
        events.push("restart");
        await writer.exec(insertRows(2300));
      }
    });
    const r = recorder();
    const image = await fileSource(files, path, r.options).read({ maxBytes: MAX, onRetry: r.onRetry });
    expect(events).toEqual(["checkpoint", "restart"]);
    expect(image.attempts).toBe(2);
    expect(r.retries.map((x) => x.reason)).toEqual([`${path} was modified during the read`]);
    expect(await integrityCheck(image.bytes)).toBe("ok");
    const tables = await dumpTables(image.bytes);
    expect(tables.u).toEqual([[1, "c2"]]);
    expect(tables.t?.[0]?.[1]).toBe("00".repeat(ROW_BYTES));
    expect(tables.t).toHaveLength(3 + 1200 + 1000 + 2300);
  });

  it("reads again when the main file is replaced by rename during the copy, even with the WAL unchanged", async () => {
    const { path, writer } = await walDb("walrename.db", 50);
    await writer.exec(`INSERT INTO t(id, v) VALUES (1000, x'c0ffee')`);
    const files = filesWith(async ({ path: p, copy, n }) => {
      if (p !== path || !copy || n !== 1) return;
      await writeFile(`${path}.tmp`, await readFile(path));
      await rename(`${path}.tmp`, path);
    });
    const r = recorder();
    const image = await fileSource(files, path, r.options).read({ maxBytes: MAX, onRetry: r.onRetry });
    expect(image.attempts).toBe(2);
    expect(r.retries.map((x) => x.reason)).toEqual([`${path} was replaced during the read`]);
    expect((await dumpTables(image.bytes)).t?.at(-1)).toEqual([1000, "c0ffee"]);
  });
});
