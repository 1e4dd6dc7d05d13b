import type { SqlJsStatic } from "sql.js";
import { describe, expect, it } from "vitest";
import { BackupError } from "../../src/errors.js";
import { checkImage, openImage } from "../../src/sqlite/check.js";
import { corruptIndexPage, corruptTableLeaf, makeDatabase, quickCheck, sqlJs } from "../helpers/db.js";

describe("checkImage", () => {
  it("describes a healthy database", async () => {
    const SQL = await sqlJs();
    const bytes = await makeDatabase({ rows: 100 });
    for (const mode of ["none", "structure", "quick", "full"] as const) {
      const info = checkImage(SQL, bytes, mode, "test db");
      expect(info).toEqual({ pageSize: 4096, pageCount: bytes.length / 4096, sqliteVersion: expect.stringMatching(/^3\.\d+\.\d+$/), tables: 3 });
    }
  });

  it("quick and full checks reject a corrupt index b-tree; none does not look", async () => {
    const SQL = await sqlJs();
    const bad = await corruptIndexPage(await makeDatabase({ rows: 3000 }));
    expect(checkImage(SQL, bad, "none", "bad db").tables).toBe(3);
    for (const mode of ["quick", "full"] as const) {
      let err: unknown;
      try {
        checkImage(SQL, bad, mode, "bad db");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("SQLITE_CORRUPT");
      expect((err as BackupError).message).toMatch(mode === "quick" ? /^bad db failed PRAGMA quick_check: / : /^bad db failed PRAGMA integrity_check: /);
    }
  });

  it("reads the caller's buffer in place instead of copying it", async () => {
    const SQL = await sqlJs();
    const db = new SQL.Database();
    db.run("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('marker-lowercase')");
    const bytes = db.export();
    db.close();
    const at = Buffer.from(bytes).indexOf("marker-lowercase");
    expect(at).toBeGreaterThan(0);

    const opened = openImage(SQL, bytes);
    try {
      // Changed after opening, before SQLite reads the page: only visible if not copied.
      bytes.set(new TextEncoder().encode("MARKER-LOWERCASE"), at);
      expect(opened.exec("SELECT v FROM t")[0]?.values[0]?.[0]).toBe("MARKER-LOWERCASE");
    } finally {
      opened.close();
    }
  });

  it("structure rejects a damaged table b-tree that SQLite's quick_check rejects too, naming the page", async () => {
    const SQL = await sqlJs();
    const bad = await corruptTableLeaf(await makeDatabase({ rows: 3000 }));
    expect(await quickCheck(bad)).not.toEqual(["ok"]);
    expect(checkImage(SQL, bad, "none", "bad db").tables).toBe(3);
    let err: unknown;
    try {
      checkImage(SQL, bad, "structure", "bad db");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("SQLITE_CORRUPT");
    expect((err as BackupError).status).toBe(422);
    expect((err as BackupError).message).toMatch(/^bad db failed the structural check \(CHECK=structure\): .*\bpage \d+/i);
  });

  it("structure never opens the image in sql.js: SQLite is asked only for its version, from an empty database", async () => {
    const SQL = await sqlJs();
    const bytes = await makeDatabase({ rows: 100 });
    // The real sql.js, with every database it opens noted (a fresh object: sqliteVersionOf asks it once).
    const opened: (number | undefined)[] = [];
    const Database = class extends SQL.Database {
      constructor(data?: ArrayLike<number> | Buffer | null) {
        opened.push(data?.length);
        super(data);
      }
    };
    const observed = { ...SQL, Database } as SqlJsStatic;
    expect(checkImage(observed, bytes, "structure", "test db")).toEqual(checkImage(SQL, bytes, "quick", "test db"));
    expect(opened).toEqual([undefined]);
    checkImage(observed, bytes, "quick", "test db");
    expect(opened).toEqual([undefined, bytes.length]);
  });
});
