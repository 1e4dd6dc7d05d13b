/**
 * The bad-input corpus: files that are not a database the tool may back up, each with the
 * error it must give (stable code, HTTP status, a message naming the problem). Made from a
 * real database written by SQLite (sql.js), then damaged in one precise way.
 *
 *   npx tsx scripts/make-bad-inputs.ts [dir]     writes the corpus and its index.json
 *
 * test/bad-inputs.test.ts builds the same corpus in a temp directory and backs up each item.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import initSqlJs from "sql.js";

export interface BadInput {
  name: string;
  /** What is wrong with it, in words. */
  what: string;
  /** The file to back up (BACKUP_SOURCE), relative to the corpus directory. */
  file: string;
  /** Extra environment for the backup (e.g. a small MAX_BYTES). */
  env?: Record<string, string>;
  expect: { code: string; status: number; message: RegExp };
}

/** A small real database: tables, an index, text and blobs; page size 4096. */
async function realDatabase(): Promise<Uint8Array> {
  const SQL = await initSqlJs();
  const db = new SQL.Database();
  db.run(`PRAGMA page_size = 4096;
    CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body BLOB);
    CREATE INDEX items_name ON items(name);`);
  db.run("BEGIN");
  for (let i = 0; i < 2000; i++) db.run("INSERT INTO items (name, body) VALUES (?, randomblob(100))", [`item ${i}`]);
  db.run("COMMIT");
  const bytes = db.export();
  db.close();
  return bytes;
}

/** Seeded bytes that look like nothing (or like an encrypted database). */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed >>> 0;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** The root page of `index` in `db`, 1-based. */
async function rootPage(db: Uint8Array, index: string): Promise<number> {
  const SQL = await initSqlJs();
  const d = new SQL.Database(db);
  try {
    return Number(d.exec(`SELECT rootpage FROM sqlite_schema WHERE name = '${index}'`)[0]?.values[0]?.[0]);
  } finally {
    d.close();
  }
}

export async function makeBadInputs(dir: string): Promise<BadInput[]> {
  await mkdir(dir, { recursive: true });
  const db = await realDatabase();
  const pageSize = 4096;
  const items: { input: BadInput; bytes: Uint8Array }[] = [];
  const add = (input: Omit<BadInput, "file">, bytes: Uint8Array) => items.push({ input: { ...input, file: `${input.name}.db` }, bytes });

  add({ name: "empty", what: "0 bytes", expect: { code: "SOURCE_EMPTY", status: 422, message: /empty \(0 bytes\)/ } }, new Uint8Array(0));
  add({ name: "one-byte", what: "the first byte of the SQLite header only", expect: { code: "SQLITE_TRUNCATED", status: 422, message: /only 1 bytes of the 100-byte SQLite header/ } }, db.slice(0, 1));
  add({ name: "truncated-header", what: "the first 50 bytes", expect: { code: "SQLITE_TRUNCATED", status: 422, message: /shorter than the 100-byte SQLite header/ } }, db.slice(0, 50));
  add(
    { name: "missing-pages", what: "a valid header, half of the pages", expect: { code: "SQLITE_TRUNCATED", status: 422, message: /header says \d+ pages .* but it holds \d+/ } },
    db.slice(0, Math.floor(db.length / pageSize / 2) * pageSize),
  );
  add({ name: "torn-page", what: "cut in the middle of a page", expect: { code: "SQLITE_TRUNCATED", status: 422, message: /not a whole number of 4096-byte pages/ } }, db.slice(0, db.length - 1000));
  add({ name: "random", what: "1 MiB of random bytes", expect: { code: "NOT_SQLITE", status: 422, message: /not a SQLite database/ } }, noise(1024 * 1024, 1));
  add({ name: "gzip", what: "a gzipped database", expect: { code: "NOT_SQLITE", status: 422, message: /looks like a gzip file/ } }, gzipSync(db));
  add({ name: "html", what: "an HTML error page", expect: { code: "NOT_SQLITE", status: 422, message: /text or HTML/ } }, new TextEncoder().encode("<!doctype html><title>502 Bad Gateway</title>\n".repeat(50)));
  add({ name: "encrypted", what: "pages of ciphertext (SQLCipher-like)", expect: { code: "NOT_SQLITE", status: 422, message: /encrypted \(SQLCipher, SEE\)/ } }, noise(db.length, 2));
  {
    const bad = db.slice();
    bad[16] = 0x03; // page size 1000: not a power of two
    bad[17] = 0xe8;
    add({ name: "page-size", what: "page size 1000 in the header", expect: { code: "SQLITE_CORRUPT", status: 422, message: /invalid page size 1000/ } }, bad);
  }
  {
    const bad = db.slice();
    bad[18] = 7;
    add({ name: "format-version", what: "file format version 7", expect: { code: "SQLITE_CORRUPT", status: 422, message: /unknown file format versions 7\/1/ } }, bad);
  }
  {
    const bad = db.slice();
    const root = await rootPage(db, "items_name");
    // An index b-tree page whose cell count and first cell pointer point past the page.
    bad.set([0x0a, 0x00, 0x00, 0xff, 0xff, 0xff, 0xf0, 0x00], (root - 1) * pageSize);
    add({ name: "corrupt-btree", what: "an index page with an impossible cell count", expect: { code: "SQLITE_CORRUPT", status: 422, message: /quick_check|malformed|corrupt/i } }, bad);
  }
  add(
    { name: "over-max-bytes", what: "a valid database over MAX_BYTES", env: { MAX_BYTES: String(db.length - 1) }, expect: { code: "SOURCE_TOO_LARGE", status: 413, message: /over MAX_BYTES/ } },
    db,
  );

  for (const { input, bytes } of items) await writeFile(join(dir, input.file), bytes);
  const inputs = items.map((i) => i.input);
  await writeFile(join(dir, "index.json"), `${JSON.stringify(inputs.map((i) => ({ ...i, expect: { ...i.expect, message: i.expect.message.source } })), null, 2)}\n`);
  return inputs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = resolve(process.argv[2] ?? "bad-inputs");
  makeBadInputs(dir).then(
    (inputs) => process.stdout.write(`wrote ${inputs.length} bad inputs and index.json to ${dir}\n`),
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
