/**
 * make-wal-fixtures.ts — regenerate the WAL fixtures in test/fixtures/wal/ with a real SQLite.
 *
 *   npx tsx scripts/make-wal-fixtures.ts [outDir]      (default: test/fixtures/wal in the repo)
 *
 * Needs the sqlite3 CLI. Each fixture is a pair `<name>.db` + `<name>.db-wal` copied while the
 * writing sqlite3 process still had its connection open (then the process is killed, so
 * nothing is checkpointed away): the newest rows exist only in the WAL, exactly as a backup
 * finds a live application database. For each fixture the script also stores
 *
 *   - `<name>.expected.sql`: the `.dump` of what real SQLite reads from the same two files
 *     (a copy opened by the sqlite3 CLI, which runs WAL recovery): the committed state;
 *   - an entry in `fixtures.json`: the fingerprint of the database after each transaction of
 *     the WAL's current generation, as the writing session saw it (`states[0]` is the main
 *     file alone, `states[k]` the state after the k-th commit frame), and frame counts from
 *     an independent walk of the WAL bytes (walkWal below, not src/sqlite/wal.ts).
 *
 * The script checks its own work: it stops if SQLite's reading of a fixture does not match
 * the last committed state the session saw, or if a fixture lacks what it is for (no
 * uncommitted frames, no stale generation, no shrink, no growth beyond the main file).
 *
 * Salts are random, so rerunning gives different WAL bytes with the same contents.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { openSqliteSession, type SqliteSession } from "../test/helpers/sqlite-session.js";

// ---------------------------------------------------------------------------------------
// WAL bytes, walked independently of src/sqlite/wal.ts (the tests compare the two).

const HEADER = 32;
const FRAME_HEADER = 24;
export const WAL_MAGIC_LE = 0x377f0682;
export const WAL_MAGIC_BE = 0x377f0683;

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, false);
}
function putU32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(at, v >>> 0, false);
}

/** SQLite's walChecksumBytes, written from the file-format document. */
export function checksum(b: Uint8Array, from: number, length: number, bigEndian: boolean, seed: readonly [number, number]): [number, number] {
  const view = new DataView(b.buffer, b.byteOffset + from, length);
  let [s0, s1] = seed;
  for (let i = 0; i < length; i += 8) {
    s0 = (s0 + view.getUint32(i, !bigEndian) + s1) >>> 0;
    s1 = (s1 + view.getUint32(i + 4, !bigEndian) + s0) >>> 0;
  }
  return [s0, s1];
}

export interface WalkedFrame {
  offset: number;
  page: number;
  /** Database size in pages for a commit frame, else 0. */
  commit: number;
  salt1: number;
  salt2: number;
  /** Part of the valid chain (salts and cumulative checksum match, as recovery requires). */
  valid: boolean;
}

export interface WalkedWal {
  bigEndian: boolean;
  pageSize: number;
  salt1: number;
  salt2: number;
  headerValid: boolean;
  /** Every whole frame in the file, valid or not. */
  frames: WalkedFrame[];
  /** Valid frames up to and including the last valid commit frame. */
  committedFrames: number;
  commits: number;
}

export function walkWal(wal: Uint8Array): WalkedWal {
  if (wal.length < HEADER) throw new Error("not a WAL: shorter than its header");
  const magic = u32(wal, 0);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) throw new Error(`not a WAL: magic 0x${magic.toString(16)}`);
  const bigEndian = magic === WAL_MAGIC_BE;
  const pageSize = u32(wal, 8);
  let sum = checksum(wal, 0, 24, bigEndian, [0, 0]);
  const headerValid = sum[0] === u32(wal, 24) && sum[1] === u32(wal, 28);
  const salt1 = u32(wal, 16);
  const salt2 = u32(wal, 20);
  const frames: WalkedFrame[] = [];
  let chain = headerValid;
  let committedFrames = 0;
  let commits = 0;
  for (let at = HEADER; at + FRAME_HEADER + pageSize <= wal.length; at += FRAME_HEADER + pageSize) {
    const frame = { offset: at, page: u32(wal, at), commit: u32(wal, at + 4), salt1: u32(wal, at + 8), salt2: u32(wal, at + 12), valid: false };
    if (chain && frame.page !== 0 && frame.salt1 === salt1 && frame.salt2 === salt2) {
      sum = checksum(wal, at, 8, bigEndian, sum);
      sum = checksum(wal, at + FRAME_HEADER, pageSize, bigEndian, sum);
      frame.valid = sum[0] === u32(wal, at + 16) && sum[1] === u32(wal, at + 20);
    }
    chain &&= frame.valid;
    if (frame.valid && frame.commit !== 0) {
      committedFrames = frames.length + 1;
      commits++;
    }
    frames.push(frame);
  }
  return { bigEndian, pageSize, salt1, salt2, headerValid, frames, committedFrames, commits };
}

/**
 * The same log with big-endian checksums (magic 0x377f0683), as a big-endian machine writes
 * it: the header checksum and the cumulative checksum of every frame of the valid chain are
 * recomputed on big-endian words. Frames after the chain are copied unchanged (they stay
 * invalid). SQLite reads either byte order on any machine.
 */
export function toBigEndianWal(wal: Uint8Array): Uint8Array {
  const walked = walkWal(wal);
  if (walked.bigEndian) throw new Error("already big-endian");
  if (!walked.headerValid) throw new Error("the WAL header is not valid: nothing to convert");
  const out = wal.slice();
  putU32(out, 0, WAL_MAGIC_BE);
  let sum = checksum(out, 0, 24, true, [0, 0]);
  putU32(out, 24, sum[0]);
  putU32(out, 28, sum[1]);
  for (const frame of walked.frames) {
    if (!frame.valid) break;
    sum = checksum(out, frame.offset, 8, true, sum);
    sum = checksum(out, frame.offset + FRAME_HEADER, walked.pageSize, true, sum);
    putU32(out, frame.offset + 16, sum[0]);
    putU32(out, frame.offset + 20, sum[1]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// What a database holds, in one comparable line.

/** Every fixture has this table; `txn` says which transaction wrote the row. */
export const ITEMS_TABLE = "CREATE TABLE items (id INTEGER PRIMARY KEY, txn INTEGER NOT NULL, body TEXT NOT NULL)";
export const HAS_ITEMS_SQL = "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'items'";
/** Per transaction tag: rows and total body length; plus the number of schema objects. */
export const FINGERPRINT_SQL =
  "SELECT (SELECT count(*) FROM sqlite_schema) || ' objects; ' || coalesce((SELECT group_concat(s, ' ') FROM " +
  "(SELECT txn || ':' || count(*) || ':' || sum(length(body)) AS s FROM items GROUP BY txn ORDER BY txn)), 'empty')";
export const NO_ITEMS = "no items table";

/** Fingerprint through any "run one query, get the first value as text" function. */
export function fingerprintWith(query: (sql: string) => string): string {
  return query(HAS_ITEMS_SQL).trim() === "0" ? NO_ITEMS : query(FINGERPRINT_SQL).trim();
}

/** `n` rows tagged `txn`, bodies of `length` bytes, deterministic. */
export function insertRows(txn: number, n: number, length: number): string {
  return `INSERT INTO items (txn, body) SELECT ${txn}, substr(printf('t${txn}-%05d-', value) || replace(hex(zeroblob(${length})), '0', char(97 + value % 26)), 1, ${length}) FROM generate_series(1, ${n})`;
}

// ---------------------------------------------------------------------------------------
// The fixtures.

export interface FixtureEntry {
  description: string;
  pageSize: number;
  bigEndian: boolean;
  dbBytes: number;
  walBytes: number;
  /** What each commit frame of the WAL's current generation did, in order. */
  transactions: string[];
  /** states[0]: the main file alone; states[k]: after the k-th commit. */
  states: string[];
  /** From walkWal. */
  frames: number;
  committedFrames: number;
  uncommittedFrames: number;
  /** Whole frames after the valid chain: an older generation, or frames whose checksums SQLite had not yet rewritten. */
  invalidFrames: number;
  /** Database size in pages after the last commit; the main file's size in pages. */
  committedPages: number;
  mainFilePages: number;
}

export interface FixtureIndex {
  generatedBy: string;
  sqlite: string;
  fingerprintSql: string;
  fixtures: Record<string, FixtureEntry>;
}

interface Writer {
  session: SqliteSession;
  dir: string;
  path: string;
  transactions: string[];
  states: string[];
}

/** The fingerprint of what a live connection sees. */
export async function sessionFingerprint(session: SqliteSession): Promise<string> {
  const has = (await session.exec(HAS_ITEMS_SQL)).trim();
  return has === "0" ? NO_ITEMS : (await session.exec(FINGERPRINT_SQL)).trim();
}

async function startWriter(setup: string[], pageSize: number, options: { autoVacuum?: boolean } = {}): Promise<Writer> {
  const dir = mkdtempSync(join(tmpdir(), "wal-fixture-"));
  const path = join(dir, "x.db");
  const session = openSqliteSession(path);
  await session.exec(`PRAGMA page_size = ${pageSize}`);
  if (options.autoVacuum) await session.exec("PRAGMA auto_vacuum = FULL");
  const mode = (await session.exec("PRAGMA journal_mode = WAL")).trim();
  if (mode !== "wal") throw new Error(`journal_mode: ${mode}`);
  await session.exec("PRAGMA wal_autocheckpoint = 0");
  for (const sql of setup) await session.exec(sql);
  // Everything so far into the main file; the WAL starts empty, so its generation is ours.
  if (setup.length) checkpointed(await session.exec("PRAGMA wal_checkpoint(TRUNCATE)"));
  return { session, dir, path, transactions: [], states: [await sessionFingerprint(session)] };
}

function checkpointed(result: string): void {
  const [busy, log, done] = result.trim().split("|").map(Number);
  if (busy !== 0 || log !== done) throw new Error(`incomplete checkpoint: ${result.trim()}`);
}

/** One transaction, one commit frame; records the state after it. */
async function commit(w: Writer, label: string, ...statements: string[]): Promise<void> {
  await w.session.exec(`BEGIN; ${statements.join("; ")}; COMMIT`);
  w.transactions.push(label);
  w.states.push(await sessionFingerprint(w.session));
}

/** Copy the two files while the connection is open, then kill it (no checkpoint, no cleanup). */
async function snapshotAndKill(w: Writer): Promise<{ db: Uint8Array; wal: Uint8Array }> {
  const walPath = `${w.path}-wal`;
  if (!existsSync(walPath) || statSync(walPath).size === 0) throw new Error("the writer's WAL is empty");
  const db = new Uint8Array(readFileSync(w.path));
  const wal = new Uint8Array(readFileSync(walPath));
  await w.session.kill();
  rmSync(w.dir, { recursive: true, force: true });
  return { db, wal };
}

function cli(path: string, sql: string): string {
  return execFileSync("sqlite3", ["-batch", path, sql], { encoding: "utf8", maxBuffer: 1 << 28 });
}

/** What real SQLite reads from these two files: a fresh copy, opened by the CLI (WAL recovery). */
export function sqliteReads(db: Uint8Array, wal: Uint8Array): { dump: string; fingerprint: string } {
  const dir = mkdtempSync(join(tmpdir(), "wal-oracle-"));
  try {
    const path = join(dir, "copy.db");
    writeFileSync(path, db);
    writeFileSync(`${path}-wal`, wal);
    // One process: the first connection recovers the WAL; later ones would read the checkpointed file, the same state.
    const fingerprint = fingerprintWith((sql) => cli(path, sql));
    return { dump: cli(path, ".dump"), fingerprint };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Made {
  description: string;
  db: Uint8Array;
  wal: Uint8Array;
  transactions: string[];
  states: string[];
  pageSize: number;
}

const BASE_ROWS = [ITEMS_TABLE, "CREATE INDEX items_txn ON items (txn, body)", insertRows(0, 30, 200)];

async function makeCommitted(): Promise<Made> {
  const w = await startWriter(BASE_ROWS, 1024);
  const mainPages = statSync(w.path).size / 1024;
  await commit(w, "insert 10 rows (txn 1)", insertRows(1, 10, 150));
  await commit(w, "lengthen every third txn-0 row", "UPDATE items SET body = body || '+updated' WHERE txn = 0 AND id % 3 = 0");
  await commit(w, "insert 20 rows of 300 bytes (txn 3): the database grows past the main file", insertRows(3, 20, 300));
  await commit(w, "delete the txn-1 rows", "DELETE FROM items WHERE txn = 1");
  await commit(w, "insert 3 rows (txn 5)", insertRows(5, 3, 100));
  const files = await snapshotAndKill(w);
  const walked = walkWal(files.wal);
  if (!walked.frames.some((f) => f.valid && f.page > mainPages)) throw new Error("committed: no frame beyond the main file");
  return { description: "", ...files, transactions: w.transactions, states: w.states, pageSize: 1024 };
}

async function makeUncommittedTail(): Promise<Made> {
  const w = await startWriter(BASE_ROWS, 1024);
  await commit(w, "insert 10 rows (txn 1)", insertRows(1, 10, 150));
  await commit(w, "delete 5 txn-0 rows", "DELETE FROM items WHERE txn = 0 AND id <= 5");
  await commit(w, "insert 2 rows (txn 3)", insertRows(3, 2, 300));
  // A transaction too big for a 5-page cache: SQLite spills its dirty pages into the WAL as
  // frames without a commit mark. It never commits.
  await w.session.exec(`PRAGMA cache_size = 5; BEGIN; ${insertRows(9, 8, 2500)}`);
  const files = await snapshotAndKill(w);
  const walked = walkWal(files.wal);
  if (walked.frames.filter((f) => f.valid).length <= walked.committedFrames) throw new Error("uncommitted-tail: nothing was spilled");
  return { description: "", ...files, transactions: w.transactions, states: w.states, pageSize: 1024 };
}

async function makeCheckpointedThenMore(): Promise<Made> {
  const w = await startWriter(BASE_ROWS, 1024);
  // Generation 1: many frames.
  await w.session.exec(`BEGIN; ${insertRows(1, 15, 200)}; COMMIT`);
  await w.session.exec("BEGIN; UPDATE items SET body = body || '+1' WHERE txn = 0; COMMIT");
  await w.session.exec(`BEGIN; ${insertRows(2, 15, 200)}; COMMIT`);
  checkpointed(await w.session.exec("PRAGMA wal_checkpoint(PASSIVE)"));
  // The main file now holds generation 1; the next write restarts the WAL from its start
  // (new salts), leaving generation 1's later frames behind in the file.
  const walBefore = statSync(`${w.path}-wal`).size;
  w.states = [await sessionFingerprint(w.session)];
  await commit(w, "insert 2 rows (txn 11) after the restart", insertRows(11, 2, 50));
  await commit(w, "delete the txn-2 row with id 40", "DELETE FROM items WHERE id = 40");
  const files = await snapshotAndKill(w);
  const walked = walkWal(files.wal);
  const stale = walked.frames.filter((f) => !f.valid && (f.salt1 !== walked.salt1 || f.salt2 !== walked.salt2)).length;
  if (files.wal.length !== walBefore || stale === 0) throw new Error("checkpointed-then-more: no stale generation after the new frames");
  return { description: "", ...files, transactions: w.transactions, states: w.states, pageSize: 1024 };
}

async function makeShrunk(): Promise<Made> {
  const w = await startWriter([ITEMS_TABLE, insertRows(0, 60, 300)], 1024, { autoVacuum: true });
  const mainPages = statSync(w.path).size / 1024;
  await commit(w, "insert 2 rows (txn 1)", insertRows(1, 2, 100));
  await commit(w, "delete 50 txn-0 rows: auto_vacuum=FULL shrinks the database", "DELETE FROM items WHERE txn = 0 AND id > 10");
  await commit(w, "insert 1 row (txn 3)", insertRows(3, 1, 100));
  const files = await snapshotAndKill(w);
  const walked = walkWal(files.wal);
  const last = walked.frames[walked.committedFrames - 1]!;
  if (!(last.commit < mainPages)) throw new Error(`shrunk: committed size ${last.commit} pages is not below the main file's ${mainPages}`);
  return { description: "", ...files, transactions: w.transactions, states: w.states, pageSize: 1024 };
}

async function makePage64k(): Promise<Made> {
  // No setup: the main file is page 1 alone (written when the journal mode became WAL).
  const w = await startWriter([], 65536);
  await commit(w, "create items and insert 20 rows (txn 1)", ITEMS_TABLE, insertRows(1, 20, 500));
  await commit(w, "insert 5 rows (txn 2)", insertRows(2, 5, 500));
  const files = await snapshotAndKill(w);
  if (((files.db[16]! << 8) | files.db[17]!) !== 1) throw new Error("page64k: the database header should store the page size as 1");
  return { description: "", ...files, transactions: w.transactions, states: w.states, pageSize: 65536 };
}

const DESCRIPTIONS: Record<string, string> = {
  committed:
    "30 rows checkpointed into the main file, then 5 transactions only in the WAL: an insert, an update, an insert that grows the database past the main file, a delete, a small insert.",
  "big-endian": "committed.db with its WAL rewritten with big-endian checksums (magic 0x377f0683) by toBigEndianWal: the same committed state.",
  "uncommitted-tail":
    "3 committed transactions in the WAL, then frames of an open, never committed transaction spilled from a 5-page cache: valid frames without a commit mark, then frames SQLite rewrote in place, whose checksums it fixes only at commit (invalid).",
  "checkpointed-then-more":
    "A first WAL generation (3 transactions) checkpointed PASSIVE into the main file, then 2 transactions that restarted the WAL: new-generation frames followed by the first generation's stale frames.",
  shrunk: "auto_vacuum=FULL: 60 rows checkpointed, then in the WAL an insert, a delete that shrinks the database below the main file's size, an insert.",
  page64k: "page_size=65536 (stored as 1 in the database header, 65536 in the WAL header): the main file is page 1 alone; the table and its rows are only in the WAL.",
};

async function main(): Promise<void> {
  const outDir = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..", "test", "fixtures", "wal"));
  mkdirSync(outDir, { recursive: true });
  const version = execFileSync("sqlite3", ["-version"], { encoding: "utf8" }).trim();

  const made: Record<string, Made> = {
    committed: await makeCommitted(),
    "uncommitted-tail": await makeUncommittedTail(),
    "checkpointed-then-more": await makeCheckpointedThenMore(),
    shrunk: await makeShrunk(),
    page64k: await makePage64k(),
  };
  const committed = made.committed!;
  made["big-endian"] = { ...committed, wal: toBigEndianWal(committed.wal) };

  const index: FixtureIndex = { generatedBy: "scripts/make-wal-fixtures.ts", sqlite: version, fingerprintSql: FINGERPRINT_SQL, fixtures: {} };
  for (const [name, m] of Object.entries(made)) {
    const read = sqliteReads(m.db, m.wal);
    const expected = m.states.at(-1)!;
    if (read.fingerprint !== expected) throw new Error(`${name}: SQLite reads "${read.fingerprint}", the writer committed "${expected}"`);
    const walked = walkWal(m.wal);
    const validFrames = walked.frames.filter((f) => f.valid).length;
    if (walked.commits !== m.transactions.length) throw new Error(`${name}: ${walked.commits} commit frames for ${m.transactions.length} transactions`);
    writeFileSync(join(outDir, `${name}.db`), m.db);
    writeFileSync(join(outDir, `${name}.db-wal`), m.wal);
    writeFileSync(join(outDir, `${name}.expected.sql`), read.dump);
    index.fixtures[name] = {
      description: DESCRIPTIONS[name]!,
      pageSize: m.pageSize,
      bigEndian: walked.bigEndian,
      dbBytes: m.db.length,
      walBytes: m.wal.length,
      transactions: m.transactions,
      states: m.states,
      frames: walked.frames.length,
      committedFrames: walked.committedFrames,
      uncommittedFrames: validFrames - walked.committedFrames,
      invalidFrames: walked.frames.length - validFrames,
      committedPages: walked.frames[walked.committedFrames - 1]!.commit,
      mainFilePages: m.db.length / m.pageSize,
    };
    console.log(`${name}: ${m.db.length} + ${m.wal.length} bytes, ${walked.commits} commits, ${index.fixtures[name]!.uncommittedFrames} uncommitted, ${index.fixtures[name]!.invalidFrames} invalid frames`);
  }
  writeFileSync(join(outDir, "fixtures.json"), `${JSON.stringify(index, null, 2)}\n`);
}

const invokedDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
