/**
 * Open an image with sql.js (SQLite compiled to WASM) without copying it, run the
 * configured check and read the metadata that goes on the backup object. CHECK=structure
 * does not open the image in SQLite: src/sqlite/structure.ts reads its pages instead.
 */
import type { Database, SqlJsStatic } from "sql.js";
import type { CheckMode } from "../config.js";
import { BackupError } from "../errors.js";
import { checkStructureOf } from "./structure.js";

export interface ImageInfo {
  pageSize: number;
  pageCount: number;
  sqliteVersion: string;
  tables: number;
}

/**
 * sql.js stores a database handed to `new Database(bytes)` in its in-memory file system,
 * which copies it with `bytes.slice()`: a second full copy of a database that may be GiBs.
 * Handing it a Uint8Array whose `slice` is a view lets SQLite read our buffer in place.
 * SQLite only reads here (checks and pragmas), so the buffer is never written through.
 */
class SharedBytes extends Uint8Array {
  override slice(start?: number, end?: number): Uint8Array<ArrayBuffer> {
    return this.subarray(start, end);
  }
}

/**
 * Pages SQLite caches while checking. The checks read the image from memory, mostly once, so
 * SQLite's default cache (~2 MiB) buys nothing: quick_check of a 256 MiB database grew the
 * process by 11–19 MiB with it and by ~0 with 64 pages (5 MiB less on the check thread), at
 * the same speed; integrity_check too (16 pages made it slower). The check thread sends it too.
 */
export const CHECK_CACHE_PRAGMA = "PRAGMA cache_size = 64";

export function openImage(sqlite: SqlJsStatic, image: Uint8Array): Database {
  const db = new sqlite.Database(new SharedBytes(image.buffer as ArrayBuffer, image.byteOffset, image.byteLength));
  db.exec(CHECK_CACHE_PRAGMA);
  return db;
}

/** The modes in which SQLite (sql.js) opens the image; `structure` reads the pages without it. */
export type SqlCheckMode = Exclude<CheckMode, "structure">;

const CHECK_PRAGMA: Record<Exclude<SqlCheckMode, "none">, string> = {
  quick: "PRAGMA quick_check(10)",
  full: "PRAGMA integrity_check(10)",
};

/**
 * The read-only queries a check runs, in the order checkVerdict reads their answers. Kept as
 * plain SQL so that another thread (functions/check-worker.ts) can run them on its own sql.js.
 */
export function checkQueries(check: SqlCheckMode): string[] {
  return [
    // Reading the schema is the cheapest proof that SQLite can open the file at all.
    "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
    "PRAGMA page_size",
    "PRAGMA page_count",
    "SELECT sqlite_version()",
    ...(check === "none" ? [] : [CHECK_PRAGMA[check]]),
  ];
}

/** The first column of every row each query returns, reading the image in place. Throws what SQLite throws. */
export function runQueries(sqlite: SqlJsStatic, image: Uint8Array, queries: readonly string[]): unknown[][] {
  const db = openImage(sqlite, image);
  try {
    return queries.map((sql) => (db.exec(sql)[0]?.values ?? []).map((row) => row[0]));
  } finally {
    db.close();
  }
}

/** The answers to checkQueries(check) → the image's description, or SQLITE_CORRUPT with SQLite's own findings. */
export function checkVerdict(answers: readonly unknown[][], check: SqlCheckMode, what: string): ImageInfo {
  const [tables, pageSize, pageCount, version, findingRows] = answers;
  if (check !== "none") {
    const findings = (findingRows ?? []).map(String);
    if (findings.length !== 1 || findings[0] !== "ok") {
      throw new BackupError(
        "SQLITE_CORRUPT",
        `${what} failed ${check === "quick" ? "PRAGMA quick_check" : "PRAGMA integrity_check"}: ${findings.slice(0, 3).join("; ")}`,
        422,
      );
    }
  }
  return { pageSize: Number(pageSize?.[0]), pageCount: Number(pageCount?.[0]), sqliteVersion: String(version?.[0]), tables: Number(tables?.[0]) };
}

/** SQLite could not read the image at all ("file is not a database", "database disk image is malformed"). */
export function unreadableImage(what: string, detail: string, cause?: unknown): BackupError {
  return new BackupError("SQLITE_CORRUPT", `SQLite cannot read ${what}: ${detail}`, 422, { cause });
}

/** Check and describe an image. Throws SQLITE_CORRUPT with SQLite's own findings (or the structural check's). */
export function checkImage(sqlite: SqlJsStatic, image: Uint8Array, check: CheckMode, what: string): ImageInfo {
  if (check === "structure") return checkStructure(sqlite, image, what);
  let answers: unknown[][];
  try {
    answers = runQueries(sqlite, image, checkQueries(check));
  } catch (err) {
    throw unreadableImage(what, err instanceof Error ? err.message : String(err), err);
  }
  return checkVerdict(answers, check, what);
}

/**
 * CHECK=structure: SQLite's b-tree checks over the image's pages in TypeScript
 * (src/sqlite/structure.ts), in memory of a few bytes per page. The image is never opened in
 * sql.js; the SQLite version is the library's (asked once, of an empty database). The page
 * size and count are the checker's, so the snapshot still compares them with the header.
 */
export function checkStructure(sqlite: SqlJsStatic, image: Uint8Array, what: string): ImageInfo {
  const { findings, pageSize, pageCount, tables } = checkStructureOf(image);
  if (findings.length > 0) throw structureError(what, findings);
  return { pageSize, pageCount, sqliteVersion: sqliteVersionOf(sqlite), tables };
}

/** The error for a failed structural check: SQLite's style of findings, the first three. */
export function structureError(what: string, findings: readonly string[]): BackupError {
  return new BackupError("SQLITE_CORRUPT", `${what} failed the structural check (CHECK=structure): ${findings.slice(0, 3).join("; ")}`, 422);
}

const versions = new WeakMap<SqlJsStatic, string>();

/** The SQLite version of this sql.js build (asked once per build, from an empty database). */
export function sqliteVersionOf(sqlite: SqlJsStatic): string {
  let version = versions.get(sqlite);
  if (version === undefined) {
    const db = new sqlite.Database();
    try {
      version = String(db.exec("SELECT sqlite_version()")[0]?.values[0]?.[0]);
    } finally {
      db.close();
    }
    versions.set(sqlite, version);
  }
  return version;
}
