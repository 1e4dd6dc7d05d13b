/**
 * The D1-shaped SQL of a database (restore --format sql), without wrangler: what it leaves
 * out (transactions, PRAGMAs other than defer_foreign_keys, SQLite's and D1's own tables),
 * that it loads back into an empty database with every value exact, and that a database it
 * cannot express (a virtual table) is refused rather than written incompletely. The real
 * `wrangler d1 execute` of its output is in test/sources/d1.test.ts.
 */
import { describe, expect, it } from "vitest";
import { BackupError } from "../../src/errors.js";
import { d1SqlDump } from "../../src/sqlite/sql-dump.js";
import { splitStatements } from "../../src/sqlite/sql-split.js";
import { sqlJs } from "../helpers/db.js";

const SCHEMA = `
  CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, r REAL, i INTEGER, s TEXT, b BLOB, g TEXT GENERATED ALWAYS AS (upper(s)) VIRTUAL);
  CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
  CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB);
  CREATE INDEX t_s ON t(s);
  CREATE VIEW tv AS SELECT id, g FROM t;
  CREATE TRIGGER tv_ins INSTEAD OF INSERT ON tv BEGIN INSERT INTO t(s) VALUES (new.g); END;
  INSERT INTO t (r, i, s, b) VALUES (0.1 + 0.2, 9007199254740993, 'it''s; ok', X'00ff'), (-1e300, -1, 'line
break', X''), (5e-324, 0, NULL, NULL), (1.0, NULL, '🎉', randomblob(2000));
  INSERT INTO w VALUES ('a', 1), ('b', 2.5), ('c', 'x'), ('d', X'01'), ('e', NULL);
  INSERT INTO _cf_KV VALUES ('internal', X'00');
`;

describe("d1SqlDump", () => {
  it("writes D1's export shape and loads back into an empty database with every value exact", async () => {
    const SQL = await sqlJs();
    const db = new SQL.Database();
    db.exec(SCHEMA);
    const sql = [...d1SqlDump(db)].join("");
    expect(sql.startsWith("PRAGMA defer_foreign_keys=TRUE;\n")).toBe(true);
    expect(sql).not.toMatch(/^(BEGIN|COMMIT|PRAGMA foreign_keys)/m);
    expect(sql).not.toContain("_cf_KV");
    // The view comes before the INSTEAD OF trigger that needs it.
    expect(sql.indexOf("CREATE VIEW tv")).toBeLessThan(sql.indexOf("CREATE TRIGGER tv_ins"));

    const copy = new SQL.Database();
    for (const statement of splitStatements(sql)) copy.exec(statement);
    const rows = (d: typeof db, q: string) => d.exec(q)[0]?.values;
    for (const q of [
      "SELECT id, r, typeof(r), i, typeof(i), s, hex(b), typeof(b), g FROM t ORDER BY id",
      "SELECT k, v, typeof(v) FROM w ORDER BY k",
      "SELECT name, seq FROM sqlite_sequence",
      "SELECT type, name, sql FROM sqlite_schema WHERE tbl_name <> '_cf_KV' ORDER BY name",
    ]) {
      expect(rows(copy, q), q).toEqual(rows(db, q));
    }
    expect(rows(copy, "SELECT r FROM t WHERE id = 1")).toEqual([[0.1 + 0.2]]);
    expect(String(copy.exec("PRAGMA integrity_check")[0]!.values[0]![0])).toBe("ok");
    db.close();
    copy.close();
  });

  it("refuses a database with a virtual table instead of writing it without its content", async () => {
    const SQL = await sqlJs();
    const db = new SQL.Database();
    db.exec("CREATE VIRTUAL TABLE docs USING fts4(body); INSERT INTO docs VALUES ('hello');");
    let err: unknown;
    try {
      [...d1SqlDump(db)];
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).message).toMatch(/cannot write virtual table "docs".*restore the SQLite file instead/);
    db.close();
  });
});
