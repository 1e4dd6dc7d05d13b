/**
 * WAL fixtures (test/fixtures/wal, made by scripts/make-wal-fixtures.ts) and the ways the
 * WAL tests judge a result: the committed states the writing SQLite recorded, the expected
 * dumps stored with the fixtures, and real SQLite reading the same files (the sqlite3 CLI).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fingerprintWith, type FixtureEntry, type FixtureIndex } from "../../scripts/make-wal-fixtures.js";
import { markRollbackJournal } from "../../src/sqlite/header.js";
import { applyWal, scanWal, type WalScan } from "../../src/sqlite/wal.js";
import { dumpTables, sqlJs } from "./db.js";

export const WAL_FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "wal");

export const fixtureIndex: FixtureIndex = JSON.parse(readFileSync(join(WAL_FIXTURES, "fixtures.json"), "utf8")) as FixtureIndex;

export interface WalFixture {
  name: string;
  entry: FixtureEntry;
  db: Uint8Array;
  wal: Uint8Array;
  /** `.dump` of the committed state, by real SQLite when the fixture was made. */
  expectedSql: string;
}

export function loadWalFixture(name: string): WalFixture {
  const entry = fixtureIndex.fixtures[name];
  if (!entry) throw new Error(`no WAL fixture ${name}`);
  const read = (suffix: string) => new Uint8Array(readFileSync(join(WAL_FIXTURES, `${name}${suffix}`)));
  return { name, entry, db: read(".db"), wal: read(".db-wal"), expectedSql: readFileSync(join(WAL_FIXTURES, `${name}.expected.sql`), "utf8") };
}

/**
 * The image as a file source builds it with wal.ts: the main file's pages, sized to the
 * committed database, the committed frames applied, marked rollback-journal.
 */
export function replay(db: Uint8Array, wal: Uint8Array): { image: Uint8Array; scan: WalScan; applied: number } {
  const scan = scanWal(wal);
  let image: Uint8Array;
  if (scan.header && scan.commits > 0) {
    image = new Uint8Array(scan.databasePages * scan.header.pageSize);
    image.set(db.subarray(0, Math.min(db.length, image.length)));
  } else {
    image = db.slice();
  }
  const applied = applyWal(image, wal, scan);
  markRollbackJournal(image);
  return { image, scan, applied };
}

/** The fixtures' fingerprint (FINGERPRINT_SQL) of an image, through sql.js. */
export async function fingerprintOf(bytes: Uint8Array): Promise<string> {
  const SQL = await sqlJs();
  const db = new SQL.Database(bytes);
  try {
    return fingerprintWith((sql) => String(db.exec(sql)[0]?.values[0]?.[0] ?? ""));
  } finally {
    db.close();
  }
}

/** Every table's rows of the database that `sql` (a `.dump`) builds. */
export async function tablesOfDump(sql: string): Promise<Record<string, unknown[][]>> {
  const SQL = await sqlJs();
  const db = new SQL.Database();
  try {
    db.exec(sql);
    return await dumpTables(db.export());
  } finally {
    db.close();
  }
}

const INTEGRITY_MARK = "--- integrity_check ---";

/** One sqlite3 process: `.dump` then `PRAGMA integrity_check` (the first open of a WAL database runs its recovery). */
function dumpAndCheck(path: string): { dump: string; integrity: string } {
  const out = execFileSync("sqlite3", ["-batch", "-bail", path], {
    input: `.dump\n.print ${INTEGRITY_MARK}\nPRAGMA integrity_check;\n`,
    encoding: "utf8",
    maxBuffer: 1 << 28,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const at = out.lastIndexOf(`${INTEGRITY_MARK}\n`);
  if (at < 0) throw new Error(`unexpected sqlite3 output: ${out.slice(-200)}`);
  return { dump: out.slice(0, at), integrity: out.slice(at + INTEGRITY_MARK.length + 1).trim() };
}

function inTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "seb-wal-oracle-"));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What real SQLite reads from a main file and a WAL: both written to a fresh directory (no
 * -shm, so the CLI runs WAL recovery) and opened by the sqlite3 CLI. `error` is set when
 * SQLite refuses to open them. Call only when sqliteCli() found the CLI.
 */
export function sqliteReads(db: Uint8Array, wal: Uint8Array | undefined): { dump: string; integrity: string } | { error: string } {
  return inTempDir((dir) => {
    const path = join(dir, "copy.db");
    writeFileSync(path, db);
    if (wal) writeFileSync(`${path}-wal`, wal);
    try {
      return dumpAndCheck(path);
    } catch (err) {
      return { error: String((err as { stderr?: unknown }).stderr || err) };
    }
  });
}

/** `.dump` of an image by the sqlite3 CLI, and its integrity check. */
export function sqliteDumpOfImage(image: Uint8Array): { dump: string; integrity: string } {
  return inTempDir((dir) => {
    const path = join(dir, "image.db");
    writeFileSync(path, image);
    return dumpAndCheck(path);
  });
}
