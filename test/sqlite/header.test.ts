import { gzipSync } from "node:zlib";
import initSqlJs, { type SqlJsStatic } from "sql.js";
import { beforeAll, describe, expect, it } from "vitest";
import { BackupError, type ErrorCode } from "../../src/errors.js";
import { HEADER_BYTES, markRollbackJournal, readHeader } from "../../src/sqlite/header.js";
import { mulberry32 } from "../helpers/random.js";

let SQL: SqlJsStatic;
beforeAll(async () => {
  SQL = await initSqlJs();
});

/** A real database made by SQLite, with enough rows to span several pages. */
function makeDb(pageSize?: number, rows = 40): Uint8Array {
  const db = new SQL.Database();
  try {
    if (pageSize !== undefined) db.run(`PRAGMA page_size = ${pageSize}`);
    db.run("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)");
    db.run("CREATE INDEX t_body ON t(body)");
    const stmt = db.prepare("INSERT INTO t (body) VALUES (?)");
    for (let i = 0; i < rows; i++) stmt.run([`row ${i} ${"x".repeat(300)}`]);
    stmt.free();
    if (pageSize !== undefined) db.run("VACUUM");
    return db.export();
  } finally {
    db.close();
  }
}

const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);


const WHAT = "source «/data/app.db»";

function expectError(bytes: Uint8Array, code: ErrorCode, what = WHAT): BackupError {
  let thrown: unknown;
  try {
    readHeader(bytes, what);
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `readHeader should throw ${code}`).toBeInstanceOf(BackupError);
  const err = thrown as BackupError;
  expect(err.code).toBe(code);
  expect(err.status).toBeGreaterThanOrEqual(400);
  expect(err.status).toBeLessThan(500);
  expect(err.message).toContain(what);
  return err;
}

describe("readHeader on real databases", () => {
  it("accepts a default database and reports its page size and count", () => {
    const bytes = makeDb();
    const h = readHeader(bytes, WHAT);
    expect(h.pageSize).toBe(u16(bytes, 16));
    expect(h.pageCount).toBe(bytes.length / h.pageSize);
    expect(h.pageCount).toBe(u32(bytes, 28));
    expect(h.pageCount).toBeGreaterThan(1);
    expect(h.writeVersion).toBe(1);
    expect(h.readVersion).toBe(1);
    expect(h.changeCounter).toBe(u32(bytes, 24));
    expect(h.sqliteVersionNumber).toBeGreaterThanOrEqual(3_000_000);
    expect(h.sqliteVersionNumber).toBe(u32(bytes, 96));
  });

  it.each([512, 1024, 4096, 8192, 65536])("accepts page size %i", (pageSize) => {
    const bytes = makeDb(pageSize);
    const h = readHeader(bytes, WHAT);
    expect(h.pageSize).toBe(pageSize);
    expect(h.pageCount).toBe(bytes.length / pageSize);
    expect(bytes.length % pageSize).toBe(0);
  });

  it("stores 65536 as 1 in the header and reads it back as 65536", () => {
    const bytes = makeDb(65536);
    expect(u16(bytes, 16)).toBe(1);
    expect(readHeader(bytes, WHAT).pageSize).toBe(65536);
  });

  it("accepts a WAL-mode header (2/2) and reports the versions", () => {
    const bytes = makeDb();
    bytes[18] = 2;
    bytes[19] = 2;
    const h = readHeader(bytes, WHAT);
    expect(h.writeVersion).toBe(2);
    expect(h.readVersion).toBe(2);
  });

  it("accepts extra pages beyond the header's count and reports the header's count", () => {
    const bytes = makeDb(4096);
    const grown = new Uint8Array(bytes.length + 4096);
    grown.set(bytes);
    expect(readHeader(grown, WHAT).pageCount).toBe(bytes.length / 4096);
  });

  it("falls back to the file size when the in-header size is stale", () => {
    const bytes = makeDb(4096);
    const pages = bytes.length / 4096;
    // version-valid-for (offset 92) no longer matches the change counter (offset 24).
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(92, u32(bytes, 24) + 1);
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(28, pages + 5);
    expect(readHeader(bytes, WHAT).pageCount).toBe(pages);
  });
});

describe("readHeader errors", () => {
  it("empty → SOURCE_EMPTY", () => {
    expectError(new Uint8Array(0), "SOURCE_EMPTY");
  });

  it("1 byte of a real header → SQLITE_TRUNCATED", () => {
    expectError(makeDb().slice(0, 1), "SQLITE_TRUNCATED");
  });

  it.each([2, 15, 16, 50, 99])("%i bytes of a real header → SQLITE_TRUNCATED", (n) => {
    expectError(makeDb().slice(0, n), "SQLITE_TRUNCATED");
  });

  it("exactly the 100-byte header of a multi-page database → SQLITE_TRUNCATED", () => {
    expectError(makeDb().slice(0, HEADER_BYTES), "SQLITE_TRUNCATED");
  });

  it("random bytes → NOT_SQLITE", () => {
    const rnd = mulberry32(99);
    for (const n of [1, 15, 16, 100, 4096]) {
      const bytes = Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
      if (bytes[0] === 0x53) bytes[0] = 0x00; // never start like "SQLite"
      expectError(bytes, "NOT_SQLITE");
    }
  });

  it("a gzipped database → NOT_SQLITE, and the message says gzip", () => {
    const err = expectError(new Uint8Array(gzipSync(makeDb())), "NOT_SQLITE");
    expect(err.message.toLowerCase()).toContain("gzip");
  });

  it("just the gzip magic → NOT_SQLITE mentioning gzip", () => {
    const err = expectError(new Uint8Array([0x1f, 0x8b, 0x08, 0x00]), "NOT_SQLITE");
    expect(err.message.toLowerCase()).toContain("gzip");
  });

  it("an HTML error page → NOT_SQLITE", () => {
    const html = new TextEncoder().encode("<!DOCTYPE html><html><body><h1>403 Forbidden</h1></body></html>");
    const err = expectError(html, "NOT_SQLITE");
    expect(err.message).toMatch(/HTML|text/);
    expect(err.message.toLowerCase()).not.toContain("gzip");
  });

  it("a different magic of the same length → NOT_SQLITE", () => {
    const bytes = makeDb();
    bytes[7] = 0x34; // "SQLite format 4"
    expectError(bytes, "NOT_SQLITE");
  });

  it.each([
    ["1000", 1000],
    ["0x0300 (768)", 0x0300],
    ["0", 0],
    ["256", 256],
    ["0x8000 + 1", 0x8001],
    ["0xffff", 0xffff],
  ])("invalid page size %s → SQLITE_CORRUPT", (_label, raw) => {
    const bytes = makeDb();
    bytes[16] = raw >> 8;
    bytes[17] = raw & 0xff;
    const err = expectError(bytes, "SQLITE_CORRUPT");
    expect(err.message).toContain(String(raw));
  });

  it.each([
    [0, 1],
    [1, 3],
    [3, 3],
  ])("file format versions %i/%i → SQLITE_CORRUPT", (w, r) => {
    const bytes = makeDb();
    bytes[18] = w;
    bytes[19] = r;
    expectError(bytes, "SQLITE_CORRUPT");
  });

  it.each([21, 22, 23])("damaged payload fraction at byte %i → SQLITE_CORRUPT", (at) => {
    const bytes = makeDb();
    bytes[at] = bytes[at]! + 1;
    expectError(bytes, "SQLITE_CORRUPT");
  });

  it.each([512, 4096, 65536])("missing last page (page size %i) → SQLITE_TRUNCATED", (pageSize) => {
    const bytes = makeDb(pageSize, pageSize === 65536 ? 400 : 40);
    const pages = bytes.length / pageSize;
    expect(pages).toBeGreaterThan(1);
    const err = expectError(bytes.slice(0, bytes.length - pageSize), "SQLITE_TRUNCATED");
    expect(err.message).toContain(String(pages));
  });

  it("only the first page of a multi-page database → SQLITE_TRUNCATED", () => {
    const bytes = makeDb(1024);
    expectError(bytes.slice(0, 1024), "SQLITE_TRUNCATED");
  });

  it.each([-1, -100, +1, +511])("size not a multiple of the page size (%i bytes) → SQLITE_TRUNCATED", (delta) => {
    const bytes = makeDb(4096);
    let changed: Uint8Array;
    if (delta < 0) changed = bytes.slice(0, bytes.length + delta);
    else {
      changed = new Uint8Array(bytes.length + delta);
      changed.set(bytes);
    }
    const err = expectError(changed, "SQLITE_TRUNCATED");
    expect(err.message).toContain(String(changed.length));
  });

  it("the `what` argument is used verbatim in every message", () => {
    const what = 'https://example.com/db?name="x"';
    expectError(new Uint8Array(0), "SOURCE_EMPTY", what);
    expectError(new Uint8Array([0x53]), "SQLITE_TRUNCATED", what);
    expectError(new Uint8Array([1, 2, 3]), "NOT_SQLITE", what);
  });
});

describe("markRollbackJournal", () => {
  it("flips a WAL header (2/2) to 1/1 and returns true; the result still parses", () => {
    const bytes = makeDb();
    bytes[18] = 2;
    bytes[19] = 2;
    const before = bytes.slice();
    expect(markRollbackJournal(bytes)).toBe(true);
    expect(bytes[18]).toBe(1);
    expect(bytes[19]).toBe(1);
    // Nothing else changed.
    for (let i = 0; i < bytes.length; i++) if (i !== 18 && i !== 19) expect(bytes[i]).toBe(before[i]);
    const h = readHeader(bytes, WHAT);
    expect([h.writeVersion, h.readVersion]).toEqual([1, 1]);
    // And SQLite opens it.
    const db = new SQL.Database(bytes);
    try {
      expect(db.exec("SELECT count(*) FROM t")[0]?.values[0]?.[0]).toBe(40);
    } finally {
      db.close();
    }
  });

  it("returns false and changes nothing when already 1/1", () => {
    const bytes = makeDb();
    expect([bytes[18], bytes[19]]).toEqual([1, 1]);
    const before = bytes.slice();
    expect(markRollbackJournal(bytes)).toBe(false);
    expect(bytes).toEqual(before);
  });

  it("fixes a half-WAL header (1/2) too", () => {
    const bytes = makeDb();
    bytes[19] = 2;
    expect(markRollbackJournal(bytes)).toBe(true);
    expect([bytes[18], bytes[19]]).toEqual([1, 1]);
  });
});
