/**
 * Real SQLite databases for tests, made by SQLite itself (sql.js), and ways to compare
 * what comes back: every table's rows through sql.js, and the sqlite3 CLI when present.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import initSqlJs, { type SqlJsStatic } from "sql.js";

let sqlPromise: Promise<SqlJsStatic> | undefined;
export const sqlJs = (): Promise<SqlJsStatic> => (sqlPromise ??= initSqlJs());

export interface MakeOptions {
  /** Approximate size; random blobs fill it, so the gzip output is about as large. */
  targetBytes?: number;
  rows?: number;
  pageSize?: number;
  /** Leave the header in WAL mode (bytes 18/19 = 2), as a checkpointed WAL database looks on disk. */
  walHeader?: boolean;
}

/** A database with several tables, an index, text, JSON, integers, reals and blobs. */
export async function makeDatabase(options: MakeOptions = {}): Promise<Uint8Array> {
  const SQL = await sqlJs();
  const db = new SQL.Database();
  try {
    db.run(`PRAGMA page_size = ${options.pageSize ?? 4096}`);
    db.run(`CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, score REAL);
            CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), payload TEXT, at INTEGER);
            CREATE INDEX events_user ON events(user_id, at);
            CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT, data BLOB);`);
    const rows = options.rows ?? 200;
    db.run("BEGIN");
    const u = db.prepare("INSERT INTO users (name, email, score) VALUES (?, ?, ?)");
    const e = db.prepare("INSERT INTO events (user_id, payload, at) VALUES (?, ?, ?)");
    for (let i = 0; i < rows; i++) {
      u.run([`user ${i} ✓`, `u${i}@example.test`, i * 1.5]);
      e.run([i + 1, JSON.stringify({ kind: "login", n: i, tags: ["a", "b"] }), 1_700_000_000 + i]);
    }
    u.free();
    e.free();
    const blobBytes = 64 * 1024;
    const blobs = Math.ceil((options.targetBytes ?? 0) / blobBytes);
    for (let i = 0; i < blobs; i++) db.run("INSERT INTO files (name, data) VALUES (?, randomblob(?))", [`f${i}.bin`, blobBytes]);
    db.run("COMMIT");
    const bytes = db.export();
    if (options.walHeader) {
      bytes[18] = 2;
      bytes[19] = 2;
    }
    return bytes;
  } finally {
    db.close();
  }
}

export async function writeDatabase(path: string, options: MakeOptions = {}): Promise<Uint8Array> {
  const bytes = await makeDatabase(options);
  await writeFile(path, bytes);
  return bytes;
}

export const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** Every table's rows in rowid order, blobs as hex: equal dumps mean equal contents. */
export async function dumpTables(bytes: Uint8Array): Promise<Record<string, unknown[][]>> {
  const SQL = await sqlJs();
  const db = new SQL.Database(bytes);
  try {
    const tables = (db.exec("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")[0]?.values ?? []).map((r) => String(r[0]));
    const out: Record<string, unknown[][]> = {};
    for (const t of tables) {
      const rows = db.exec(`SELECT * FROM "${t}" ORDER BY rowid`)[0]?.values ?? [];
      out[t] = rows.map((r) => r.map((v) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)));
    }
    return out;
  } finally {
    db.close();
  }
}

export async function integrityCheck(bytes: Uint8Array): Promise<string> {
  const SQL = await sqlJs();
  const db = new SQL.Database(bytes);
  try {
    return String(db.exec("PRAGMA integrity_check")[0]?.values[0]?.[0]);
  } finally {
    db.close();
  }
}

/** The sqlite3 CLI, if installed (the integration run requires it: REQUIRE_SQLITE_CLI=1). */
export function sqliteCli(): ((dbPath: string, sql: string) => string) | undefined {
  try {
    execFileSync("sqlite3", ["-version"], { stdio: "pipe" });
  } catch (err) {
    if (process.env.REQUIRE_SQLITE_CLI === "1") throw new Error("the sqlite3 CLI is required for this run (apt-get install sqlite3)", { cause: err });
    return undefined;
  }
  return (dbPath, sql) => execFileSync("sqlite3", [dbPath, sql], { encoding: "utf8", maxBuffer: 1024 ** 3 }).trim();
}

/** A copy of `bytes` with the events_user index's root page made invalid (cell count 0xffff, a cell pointer past the page). */
export async function corruptIndexPage(bytes: Uint8Array, pageSize = 4096): Promise<Uint8Array> {
  const SQL = await sqlJs();
  const db = new SQL.Database(bytes);
  const root = Number(db.exec("SELECT rootpage FROM sqlite_schema WHERE name = 'events_user'")[0]?.values[0]?.[0]);
  db.close();
  const out = bytes.slice();
  out.set([0x0a, 0x00, 0x00, 0xff, 0xff, 0xff, 0xf0, 0x00], (root - 1) * pageSize);
  return out;
}

/** SQLite's own `PRAGMA quick_check(10)` of an image (sql.js): ["ok"] when it finds nothing wrong. */
export async function quickCheck(bytes: Uint8Array): Promise<string[]> {
  const SQL = await sqlJs();
  const db = new SQL.Database(bytes);
  try {
    return (db.exec("PRAGMA quick_check(10)")[0]?.values ?? []).map((row) => String(row[0]));
  } finally {
    db.close();
  }
}

/**
 * A copy of `bytes` with a b-tree page of `table` damaged where SQLite's b-tree checks look: the
 * first cell pointer of the table's rightmost leaf points into the page's own header (offset 4).
 * SQLite's quick_check reports it ("Tree 4 page 118 cell 0: Offset 4 out of range …").
 */
export async function corruptTableLeaf(bytes: Uint8Array, table = "events"): Promise<Uint8Array> {
  const SQL = await sqlJs();
  const db = new SQL.Database(bytes);
  const root = Number(db.exec("SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = ?", [table])[0]?.values[0]?.[0]);
  db.close();
  const out = bytes.slice();
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const pageSize = view.getUint16(16) === 1 ? 65_536 : view.getUint16(16);
  let page = root;
  // Interior table pages (type 5) name their rightmost child at header offset 8.
  while (out[(page - 1) * pageSize] === 0x05) page = view.getUint32((page - 1) * pageSize + 8);
  const at = (page - 1) * pageSize;
  if (page === 1 || out[at] !== 0x0d || view.getUint16(at + 3) === 0) throw new Error(`${table}'s rightmost page ${page} is not a table leaf with cells`);
  // A leaf's header is 8 bytes; the cell pointer array follows it.
  view.setUint16(at + 8, 4);
  return out;
}
