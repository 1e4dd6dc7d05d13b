import { describe, expect, it } from "vitest";
import { BackupError } from "../../src/errors.js";
import { checkImage, openImage } from "../../src/sqlite/check.js";
import { corruptIndexPage, makeDatabase, sqlJs } from "../helpers/db.js";

describe("checkImage", () => {
  it("describes a healthy database", async () => {
    const SQL = await sqlJs();
    const bytes = await makeDatabase({ rows: 100 });
    for (const mode of ["none", "quick", "full"] as const) {
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
});
