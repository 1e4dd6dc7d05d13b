/**
 * Open an image with sql.js (SQLite compiled to WASM) without copying it, run the
 * configured check and read the metadata that goes on the backup object.
 */
import type { Database, SqlJsStatic } from "sql.js";
import type { CheckMode } from "../config.js";
import { BackupError } from "../errors.js";

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

export function openImage(sqlite: SqlJsStatic, image: Uint8Array): Database {
  return new sqlite.Database(new SharedBytes(image.buffer as ArrayBuffer, image.byteOffset, image.byteLength));
}

const CHECK_PRAGMA: Record<Exclude<CheckMode, "none">, string> = {
  quick: "PRAGMA quick_check(10)",
  full: "PRAGMA integrity_check(10)",
};

function scalar(db: Database, sql: string): unknown {
  return db.exec(sql)[0]?.values[0]?.[0];
}

/** Check and describe an image. Throws SQLITE_CORRUPT with SQLite's own findings. */
export function checkImage(sqlite: SqlJsStatic, image: Uint8Array, check: CheckMode, what: string): ImageInfo {
  let db: Database | undefined;
  try {
    db = openImage(sqlite, image);
    // Reading the schema is the cheapest proof that SQLite can open the file at all.
    const tables = Number(scalar(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"));
    if (check !== "none") {
      const findings = (db.exec(CHECK_PRAGMA[check])[0]?.values ?? []).map((row) => String(row[0]));
      if (findings.length !== 1 || findings[0] !== "ok") {
        throw new BackupError(
          "SQLITE_CORRUPT",
          `${what} failed ${check === "quick" ? "PRAGMA quick_check" : "PRAGMA integrity_check"}: ${findings.slice(0, 3).join("; ")}`,
          422,
        );
      }
    }
    return {
      pageSize: Number(scalar(db, "PRAGMA page_size")),
      pageCount: Number(scalar(db, "PRAGMA page_count")),
      sqliteVersion: String(scalar(db, "SELECT sqlite_version()")),
      tables,
    };
  } catch (err) {
    if (err instanceof BackupError) throw err;
    const detail = err instanceof Error ? err.message : String(err);
    throw new BackupError("SQLITE_CORRUPT", `SQLite cannot read ${what}: ${detail}`, 422, { cause: err });
  } finally {
    db?.close();
  }
}
