/**
 * Regressions for the order of the looks around a copy (file.ts observe(): journal, then WAL,
 * then main file). Each test reproduces, with a real sqlite3 writer, an interleaving that an
 * earlier order accepted although the copy mixed two states of the database.
 */
import { mkdtemp, readFile, rm, stat, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { fileSource } from "../../src/sources/file.js";
import { dumpTables, integrityCheck, sqliteCli } from "../helpers/db.js";
import { filesWith } from "../helpers/files.js";
import { openSqliteSession } from "../helpers/sqlite-session.js";

// If observe() looked at the main file before the WAL header, a checkpoint that completes in
// between (growing the main file with pages of the previous WAL generation) followed by a write
// that restarts the WAL would leave `before.db.size` from the old generation and `before.wal.head`
// from the new one. The WAL header would then be the same before and after the copy, so the copy
// would be accepted as "checkpoints only" (db.more tolerated), but the pages the checkpoint appended past
// before.db.size are in neither the copy nor the new WAL: buildImage would leave them zero.
// The live-writer test hit this (quick_check: "Tree 2 page 950: btreeInitPage() returns error code 11").
it("a checkpoint and a WAL restart between the look at the main file and the look at the WAL do not leave pages out", async () => {
  const dir = await mkdtemp(join(tmpdir(), "seb-walsize-"));
  const path = join(dir, "grow.db");
  const writer = openSqliteSession(path);
  try {
    await writer.exec(`PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
      INSERT INTO t(v) VALUES (randomblob(100)); PRAGMA wal_checkpoint(PASSIVE);`);
    // 200 pages committed in the WAL only: the main file is still a few pages long.
    await writer.exec(`INSERT INTO t(v) SELECT randomblob(4000) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200) SELECT i FROM c)`);
    const smallSize = (await stat(path)).size;
    let heads = 0;
    const files = filesWith(async (e) => {
      // Right after the first look at the main file's header (its size is already taken),
      // before the WAL's: what the writer's autocheckpoint does, then its next insert.
      if (e.path === path && e.length === 100 && ++heads === 1) await writer.exec(`PRAGMA wal_checkpoint(PASSIVE); INSERT INTO t(id, v) VALUES (1000, x'c0ffee')`);
    });
    const image = await fileSource(files, path, { sleep: async () => {}, random: () => 0.5 }).read({ maxBytes: 2 ** 32 - 1 });
    expect((await stat(path)).size).toBeGreaterThan(smallSize + 190 * 4096);
    expect((await readFile(`${path}-wal`)).length).toBeGreaterThan(0);
    expect(await integrityCheck(image.bytes)).toBe("ok"); // with the old order: "Tree 2 page …: btreeInitPage() returns error code 11"
    const t = (await dumpTables(image.bytes)).t!;
    expect(t).toHaveLength(202);
    expect(t.at(-1)).toEqual([1000, "c0ffee"]);
  } finally {
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  }
});

// If the look after the copy read the database header before checking the journal: a transaction
// larger than its page cache writes ("spills") uncommitted pages into the file while its journal
// is hot; if its COMMIT (page 1 first, journal deleted last) lands between those two steps of the
// after-look, and the spill kept the file's size and mtime (file timestamps come from a coarse
// clock: a spill in the same tick as the previous write leaves mtime unchanged; utimes stands in
// for that here), the copy would be accepted although it holds part of that transaction.
it("never accepts a copy that holds part of a spilled transaction committing during the look after the copy", async () => {
  const dir = await mkdtemp(join(tmpdir(), "seb-order-"));
  const path = join(dir, "spill.db");
  const writer = openSqliteSession(path);
  try {
    // Over one 8 MiB read chunk, so that the spill lands between two chunks of the copy.
    sqliteCli()!(path, `PRAGMA journal_mode=DELETE; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
      WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2500) INSERT INTO t(v) SELECT randomblob(4000) FROM c;`);
    const T = 1_700_000_000;
    await utimes(path, T, T);
    await writer.exec("PRAGMA cache_size = 5");
    let headers = 0;
    const files = filesWith(async (e) => {
      if (e.path !== path) return;
      if (e.copy && e.n === 1) {
        // One transaction updates 50 rows spread over the file; its pages spill into the file, uncommitted.
        await writer.exec("BEGIN; UPDATE t SET v = zeroblob(4000) WHERE id % 50 = 0");
        await utimes(path, T, T); // same clock tick as the file's last write
      }
      if (e.length === 100 && ++headers === 2) await writer.exec("COMMIT"); // right after the after-look's header read
    });
    const image = await fileSource(files, path, { sleep: async () => {}, random: () => 0.5 }).read({ maxBytes: 2 ** 32 - 1 });
    expect(await integrityCheck(image.bytes)).toBe("ok");
    const zeroed = (await dumpTables(image.bytes)).t!.filter((row) => row[1] === "00".repeat(4000)).length;
    // All 50 rows of the transaction or none of them; with the old order: 9 of 50.
    expect([0, 50]).toContain(zeroed);
    expect(image.attempts).toBe(2);
  } finally {
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  }
});
