/**
 * The statement splitter against SQLite itself: a corpus with everything that makes `;`
 * ambiguous (strings, quoted names, comments, trigger bodies, CASE … END inside them) is run
 * by the sqlite3 CLI (`.read`, which cuts statements with sqlite3_complete) and, statement by
 * statement as the splitter cuts them, by sql.js; both databases' `.dump` must be the same.
 * The cuts must not depend on where the text is broken into chunks.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStatementSplitter, splitStatements } from "../../src/sqlite/sql-split.js";
import { sqlJs } from "../helpers/db.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-sql-split-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const CORPUS = `-- a comment; with a semicolon
PRAGMA foreign_keys=OFF;
CREATE TABLE "semi;colon" (id INTEGER PRIMARY KEY, "we""ird;" TEXT, [br;acket] TEXT, \`back;tick\` BLOB);
CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
/* a block comment; END; BEGIN */
CREATE TABLE log(id INTEGER PRIMARY KEY AUTOINCREMENT, msg TEXT);
INSERT INTO "semi;colon" VALUES (1, 'it''s; ok', 'END;', X'00ff3b'), (2, 'line
break;  -- not a comment', '/* not a comment */', NULL);
INSERT INTO kv VALUES ('BEGIN', 'END'), ('trigger', 'create temp trigger x'), ('end;', ';;');
CREATE TRIGGER t1 AFTER INSERT ON kv BEGIN
  INSERT INTO log(msg) VALUES ('kv ' || new.k || '; END;');
  UPDATE kv SET v = CASE WHEN new.v = 'a' THEN 'b' ELSE new.v END WHERE k = new.k;
END;
CREATE TEMP TRIGGER t2 AFTER DELETE ON kv BEGIN SELECT 1; END ;
CREATE VIEW v1 AS SELECT k, v FROM kv WHERE v <> ';';
;;
INSERT INTO kv VALUES ('after', 'triggers'); -- fires t1
EXPLAIN SELECT 1;
CREATE TRIGGER "t;3" BEFORE UPDATE ON log WHEN old.msg NOT LIKE '%;%' BEGIN
  SELECT RAISE(IGNORE);
END;
INSERT INTO log(msg) VALUES ('última; ünïcödé 🎉');
`;

describe("splitStatements", () => {
  it("cuts where sqlite3_complete says a statement ends", () => {
    expect(splitStatements("SELECT 1; SELECT ';' ; -- c;\nSELECT \"a;b\";")).toEqual(["SELECT 1;", "SELECT ';' ;", "-- c;\nSELECT \"a;b\";"]);
    expect(splitStatements("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END; SELECT 3;")).toEqual([
      "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;",
      "SELECT 3;",
    ]);
    // EXPLAIN and TEMP in front of a trigger, as complete.c handles them.
    expect(splitStatements("EXPLAIN CREATE TEMPORARY TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END; X;")).toHaveLength(2);
    // `end` as part of a longer word, or quoted, is not END.
    expect(splitStatements("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1 AS ending; SELECT 'end'; END; X;")).toHaveLength(2);
    // Without a `;` at the end the statement is incomplete: returned last, as is.
    expect(splitStatements("SELECT 1; SELECT 2")).toEqual(["SELECT 1;", "SELECT 2"]);
    // Comments and empty statements alone are no statements.
    expect(splitStatements(" ;; -- x\n/* y */ ;")).toEqual([]);
  });

  it("gives the same statements however the text is broken into chunks", () => {
    const whole = splitStatements(CORPUS);
    expect(whole.length).toBe(13);
    for (const size of [1, 2, 3, 5, 7, 13, 64, 1000]) {
      const s = createStatementSplitter();
      const got: string[] = [];
      for (let at = 0; at < CORPUS.length; at += size) got.push(...s.push(CORPUS.slice(at, at + size)));
      expect(s.end()).toBeUndefined();
      expect(got, `chunks of ${size}`).toEqual(whole);
    }
  });

  it("loads the corpus into sql.js as sqlite3 .read loads it: the same .dump", async () => {
    const SQL = await sqlJs();
    const byCli = join(dir, "cli.db");
    const bySplitter = join(dir, "splitter.db");
    await writeFile(join(dir, "corpus.sql"), CORPUS);
    execFileSync("sqlite3", ["-bail", byCli, `.read ${join(dir, "corpus.sql")}`], { stdio: "pipe" });
    const db = new SQL.Database();
    for (const statement of splitStatements(CORPUS)) db.exec(statement);
    await writeFile(bySplitter, db.export());
    db.close();
    const dump = (path: string) => execFileSync("sqlite3", [path, ".dump"], { encoding: "utf8" });
    expect(dump(bySplitter)).toBe(dump(byCli));
    // The trigger fired once per insert into kv after it was created: the corpus did run.
    expect(execFileSync("sqlite3", [bySplitter, "SELECT count(*) FROM log"], { encoding: "utf8" }).trim()).toBe("2");
  });

  it("round-trips sqlite3's own .dump of the loaded corpus, chunked", async () => {
    const SQL = await sqlJs();
    const path = join(dir, "cli.db");
    const original = execFileSync("sqlite3", [path, ".dump"], { encoding: "utf8" });
    const s = createStatementSplitter();
    const db = new SQL.Database();
    const statements: string[] = [];
    for (let at = 0; at < original.length; at += 17) statements.push(...s.push(original.slice(at, at + 17)));
    expect(s.end()).toBeUndefined();
    for (const st of statements) db.exec(st);
    const copy = join(dir, "copy.db");
    await writeFile(copy, db.export());
    db.close();
    expect(execFileSync("sqlite3", [copy, ".dump"], { encoding: "utf8" })).toBe(original);
  });
});
