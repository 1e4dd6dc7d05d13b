/**
 * The 100-byte SQLite database header (https://www.sqlite.org/fileformat2.html#the_database_header),
 * checked before sql.js sees the bytes so that a wrong, truncated or half-written file gets
 * an error that says which, instead of SQLite's generic "file is not a database".
 */
import { BackupError } from "../errors.js";

export const HEADER_BYTES = 100;
const MAGIC = new TextEncoder().encode("SQLite format 3\0");

export interface SqliteHeader {
  pageSize: number;
  /** Pages of the database, from the header when valid, else from the file size. */
  pageCount: number;
  /** 1 = rollback journal, 2 = WAL. */
  writeVersion: number;
  readVersion: number;
  reservedBytes: number;
  changeCounter: number;
  /** SQLITE_VERSION_NUMBER of the library that last wrote the file. */
  sqliteVersionNumber: number;
}

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}
function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
}

/** The page size the header records (bytes 16–17; the value 1 means 65536), not validated. */
export function headerPageSize(bytes: Uint8Array): number {
  const raw = u16(bytes, 16);
  return raw === 1 ? 65536 : raw;
}

function notSqlite(what: string, bytes: Uint8Array): BackupError {
  let hint = "";
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) hint = " It looks like a gzip file: gunzip it first.";
  else if (bytes[0] === 0x3c) hint = " It looks like text or HTML, not a database.";
  else if (bytes.length >= 16) hint = " If it is encrypted (SQLCipher, SEE), back up a decrypted copy instead.";
  return new BackupError("NOT_SQLITE", `${what} is not a SQLite database: it does not start with the "SQLite format 3" header.${hint}`, 422);
}

/**
 * Validate the header against the image's length. `what` names the source in messages.
 * Throws SOURCE_EMPTY, NOT_SQLITE, SQLITE_TRUNCATED or SQLITE_CORRUPT.
 *
 * A streamed image passes only its first bytes (at least HEADER_BYTES of them, or all of a
 * shorter image) and its whole `length`.
 */
export function readHeader(bytes: Uint8Array, what: string, length = bytes.length): SqliteHeader {
  if (length === 0) throw new BackupError("SOURCE_EMPTY", `${what} is empty (0 bytes): there is no database to back up.`, 422);
  const prefix = bytes.subarray(0, MAGIC.length);
  if (prefix.length < MAGIC.length || !prefix.every((b, i) => b === MAGIC[i])) {
    if (bytes.length < MAGIC.length && MAGIC.subarray(0, bytes.length).every((b, i) => b === bytes[i])) {
      throw new BackupError("SQLITE_TRUNCATED", `${what} is truncated: only ${bytes.length} bytes of the 100-byte SQLite header.`, 422);
    }
    throw notSqlite(what, bytes);
  }
  if (length < HEADER_BYTES) {
    throw new BackupError("SQLITE_TRUNCATED", `${what} is truncated: ${length} bytes, shorter than the 100-byte SQLite header.`, 422);
  }
  const rawPageSize = u16(bytes, 16);
  const pageSize = headerPageSize(bytes);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    throw new BackupError("SQLITE_CORRUPT", `${what} has an invalid page size ${rawPageSize} in its header (must be a power of two from 512 to 65536).`, 422);
  }
  const writeVersion = bytes[18]!;
  const readVersion = bytes[19]!;
  if (![1, 2].includes(writeVersion) || ![1, 2].includes(readVersion)) {
    throw new BackupError("SQLITE_CORRUPT", `${what} has unknown file format versions ${writeVersion}/${readVersion} in its header (expected 1 or 2).`, 422);
  }
  if (bytes[21] !== 64 || bytes[22] !== 32 || bytes[23] !== 32) {
    throw new BackupError("SQLITE_CORRUPT", `${what} has invalid payload fractions in its header: the header is damaged.`, 422);
  }
  if (length % pageSize !== 0) {
    throw new BackupError(
      "SQLITE_TRUNCATED",
      `${what} is ${length} bytes, not a whole number of ${pageSize}-byte pages: it is truncated or was copied while being written.`,
      422,
    );
  }
  const changeCounter = u32(bytes, 24);
  const headerPages = u32(bytes, 28);
  const filePages = length / pageSize;
  // The in-header size is only valid when "version-valid-for" matches the change counter.
  const headerValid = headerPages > 0 && u32(bytes, 92) === changeCounter;
  if (headerValid && headerPages > filePages) {
    throw new BackupError(
      "SQLITE_TRUNCATED",
      `${what} is truncated: its header says ${headerPages} pages (${headerPages * pageSize} bytes) but it holds ${filePages} (${length} bytes).`,
      422,
    );
  }
  return {
    pageSize,
    pageCount: headerValid ? headerPages : filePages,
    writeVersion,
    readVersion,
    reservedBytes: bytes[20]!,
    changeCounter,
    sqliteVersionNumber: u32(bytes, 96),
  };
}

/**
 * A WAL-mode header (versions 2/2) makes SQLite look for a -wal file and shared memory,
 * which an in-memory image has neither of. The image is a complete database, so mark it
 * as a rollback-journal database (1/1); `PRAGMA journal_mode=WAL` switches it back after
 * a restore. Mutates `bytes`; returns whether it changed anything.
 */
export function markRollbackJournal(bytes: Uint8Array): boolean {
  if (bytes[18] === 1 && bytes[19] === 1) return false;
  bytes[18] = 1;
  bytes[19] = 1;
  return true;
}
