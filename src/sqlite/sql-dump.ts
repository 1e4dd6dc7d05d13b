/**
 * A SQLite database → the SQL `wrangler d1 execute --file` takes, in the shape of D1's own
 * export: `PRAGMA defer_foreign_keys=TRUE;`, then each table with its rows, then indexes,
 * views and triggers. No `BEGIN TRANSACTION`/`COMMIT` and no other PRAGMA: D1 rejects them
 * (it runs the file as one transaction itself). Values are written with SQLite's own
 * `quote()`, so text, blobs, integers and reals come back exactly. Yields the text in pieces
 * so that a large database is written without being held as one string.
 */
import type { Database } from "sql.js";
import { BackupError } from "../errors.js";

/** A name as a quoted SQL identifier. */
export function quoteName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

interface SchemaRow {
  type: string;
  name: string;
  sql: string;
}

/** Tables SQLite and D1 keep for themselves: never dumped as rows of their own. */
function isInternal(name: string): boolean {
  return /^sqlite_/i.test(name) || /^_cf_/i.test(name);
}

export function* d1SqlDump(db: Database): Generator<string> {
  const schema: SchemaRow[] = [];
  const stmt = db.prepare("SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid");
  try {
    while (stmt.step()) {
      const [type, name, sql] = stmt.get() as [string, string, string];
      schema.push({ type, name, sql });
    }
  } finally {
    stmt.free();
  }
  const virtual = schema.find((o) => o.type === "table" && /^\s*create\s+virtual\s+table\b/i.test(o.sql));
  if (virtual) {
    throw new BackupError(
      "BAD_REQUEST",
      `restore --format sql cannot write virtual table ${quoteName(virtual.name)} (FTS and other virtual tables keep their content in shadow tables that D1 rebuilds itself): restore the SQLite file instead.`,
      400,
    );
  }

  yield "PRAGMA defer_foreign_keys=TRUE;\n";
  for (const table of schema.filter((o) => o.type === "table" && !isInternal(o.name))) {
    yield `${table.sql};\n`;
    yield* rows(db, table.name);
  }
  // AUTOINCREMENT counters, as sqlite3 .dump and D1's export write them.
  if (schema.some((o) => o.type === "table" && o.name === "sqlite_sequence")) {
    yield "DELETE FROM sqlite_sequence;\n";
    yield* rows(db, "sqlite_sequence");
  }
  // Views before triggers: an INSTEAD OF trigger needs its view.
  for (const type of ["index", "view", "trigger"]) {
    for (const o of schema.filter((x) => x.type === type && !isInternal(x.name))) yield `${o.sql};\n`;
  }
}

/** `INSERT INTO "t" VALUES(…);` per row; generated columns are left for SQLite to compute. */
function* rows(db: Database, table: string): Generator<string> {
  const columns: string[] = [];
  const info = db.prepare(`PRAGMA table_xinfo(${quoteName(table)})`);
  try {
    while (info.step()) {
      const row = info.getAsObject() as { name: string; hidden: number };
      if (row.hidden === 0) columns.push(row.name);
    }
  } finally {
    info.free();
  }
  if (columns.length === 0) return;
  const hasGenerated = columns.length !== countColumns(db, table);
  const into = hasGenerated ? `${quoteName(table)}(${columns.map(quoteName).join(",")})` : quoteName(table);
  const select = db.prepare(`SELECT ${columns.map((c) => `quote(${quoteName(c)})`).join(" || ',' || ")} FROM ${quoteName(table)}`);
  try {
    let chunk = "";
    while (select.step()) {
      chunk += `INSERT INTO ${into} VALUES(${select.get()[0] as string});\n`;
      if (chunk.length >= 256 * 1024) {
        yield chunk;
        chunk = "";
      }
    }
    if (chunk) yield chunk;
  } finally {
    select.free();
  }
}

function countColumns(db: Database, table: string): number {
  const r = db.exec(`SELECT count(*) FROM pragma_table_xinfo(${sqlString(table)})`);
  return Number(r[0]?.values[0]?.[0] ?? 0);
}

function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
