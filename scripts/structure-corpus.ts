/**
 * The differential corpus for CHECK=structure (src/sqlite/structure.ts): real databases written
 * by the sqlite3 CLI and by sql.js in the SHAPES below, each damaged many times by one seeded mutation
 * aimed at one structure (a page-header field, a cell pointer, a child or overflow pointer, a
 * freelist or pointer-map entry, a database-header field, a zeroed or swapped page, a truncated
 * file, a random byte). SQLite's verdict is the reference: a file is sound only when
 * `PRAGMA quick_check` says exactly `ok` both in the sqlite3 CLI and in sql.js. Our checker must
 * accept every sound file (no false positive) and reject the files SQLite rejects.
 *
 *   npm run structure-corpus                       the agreement table (markdown) on stdout
 *   npm run structure-corpus -- --seed N           another corpus
 *   npm run structure-corpus -- --case I --out F   write case I (its description on stdout)
 *   npm run structure-corpus -- --write DIR        write every case and index.json to DIR
 *
 * test/sqlite/structure-corpus.test.ts runs the same corpus. Everything is derived from the seed
 * (and the bytes the two SQLite writers produce), so a case is reproduced by seed + index.
 * The page parser below is test tooling: it only reads the sound bases, to aim the mutations.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import initSqlJs, { type SqlJsStatic } from "sql.js";
import { checkStructureOf, type StructureReport } from "../src/sqlite/structure.js";

export const DEFAULT_SEED = 20_261_206;

// ---- seeded randomness ----------------------------------------------------------------------

/** mulberry32 with helpers; the same seed gives the same corpus. */
export class Rng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
}

/** FNV-1a of a string mixed with a seed: one independent stream per case. */
function seedOf(seed: number, ...parts: (string | number)[]): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const ch of parts.join("\u0000")) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

// ---- base shapes ----------------------------------------------------------------------------

const ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789-_.,;:!?";
const UNICODE = ["é", "ß", "Ω", "漢", "字", "ж", "😀", "→", "ñ"];

function text(r: Rng, n: number, unicode = false): string {
  let s = "";
  for (let i = 0; i < n; i++) s += unicode && r.chance(0.2) ? r.pick(UNICODE) : ALPHABET[r.int(0, ALPHABET.length - 1)];
  return s;
}
const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;
const blob = (r: Rng, n: number): string => `X'${Buffer.from(r.bytes(n)).toString("hex")}'`;
/** A random SQL value of roughly `size` bytes: integer, real, text, blob or NULL. */
function value(r: Rng, size: number): string {
  switch (r.int(0, 5)) {
    case 0:
      return "NULL";
    case 1:
      return String(r.int(-2_000_000_000, 2_000_000_000) * (r.chance(0.3) ? 1_000_000 : 1));
    case 2:
      return (r.next() * 1e6 - 5e5).toFixed(4);
    case 3:
      return blob(r, size);
    default:
      return q(text(r, size));
  }
}

export interface Shape {
  name: string;
  pageSize: number;
  /** What structures it exercises, for the report. */
  covers: string;
  /** sql.js cannot do it (reserved bytes need the CLI's .filectrl). */
  cliOnly?: boolean;
  /** The SQL (for the CLI: dot-commands allowed only when cliOnly). */
  sql(r: Rng): string;
}

const PEOPLE_DDL = `
CREATE TABLE person (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT UNIQUE, score REAL, born INTEGER, note TEXT);
CREATE TABLE tag (name TEXT PRIMARY KEY, weight INTEGER NOT NULL DEFAULT 1, info BLOB) WITHOUT ROWID;
CREATE TABLE audit (at INTEGER, person_id INTEGER, what TEXT);
CREATE INDEX person_score ON person(score) WHERE score IS NOT NULL AND score > 10;
CREATE UNIQUE INDEX person_name_born ON person(name, born);
CREATE INDEX audit_multi ON audit(person_id, at DESC, what);
CREATE INDEX tag_weight ON tag(weight, name);
CREATE VIEW top_people AS SELECT id, name, score FROM person WHERE score > 50 ORDER BY score DESC;
CREATE VIEW tag_count AS SELECT count(*) AS n FROM tag;
CREATE TRIGGER person_ins AFTER INSERT ON person BEGIN INSERT INTO audit VALUES (new.born, new.id, 'insert ' || new.name); END;
CREATE TRIGGER person_del BEFORE DELETE ON person BEGIN INSERT INTO audit VALUES (old.born, old.id, 'delete'); END;
CREATE TABLE strict_t (a INTEGER NOT NULL, b TEXT, c ANY) STRICT;
CREATE TABLE gen (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) STORED, c TEXT GENERATED ALWAYS AS (upper(a)) VIRTUAL);
CREATE VIRTUAL TABLE notes USING fts4(body);
`;

export const SHAPES: readonly Shape[] = [
  { name: "empty-4096", pageSize: 4096, covers: "one page: PRAGMA user_version on an empty database", sql: () => "PRAGMA user_version = 1;" },
  { name: "empty-512", pageSize: 512, covers: "one 512-byte page: VACUUM of an empty database", sql: () => "PRAGMA page_size = 512; VACUUM;" },
  {
    name: "schema-only-2048",
    pageSize: 2048,
    covers: "schema and no rows: AUTOINCREMENT, WITHOUT ROWID, STRICT, generated columns, an FTS4 table (rootpage 0), partial/unique/multi-column indexes, views, triggers",
    sql: () => `PRAGMA page_size = 2048;${PEOPLE_DDL}`,
  },
  {
    name: "indexes-4096",
    pageSize: 4096,
    covers: "the same schema with rows: partial, UNIQUE and multi-column DESC indexes, triggers writing rows, FTS4 shadow tables, sqlite_stat1 (ANALYZE), deletes, updates",
    sql: (r) => {
      const s = [`PRAGMA page_size = 4096;${PEOPLE_DDL}BEGIN;`];
      for (let i = 0; i < 700; i++) {
        s.push(`INSERT INTO person (name, email, score, born, note) VALUES (${q(`p${i} ${text(r, r.int(3, 30))}`)}, ${r.chance(0.9) ? q(`u${i}@x.test`) : "NULL"}, ${r.chance(0.8) ? (r.next() * 100).toFixed(2) : "NULL"}, ${r.int(1900, 2020)}, ${r.chance(0.7) ? q(text(r, r.int(0, 400))) : "NULL"});`);
      }
      for (let i = 0; i < 200; i++) s.push(`INSERT INTO tag VALUES (${q(`tag-${i}-${text(r, r.int(1, 40))}`)}, ${r.int(1, 20)}, ${r.chance(0.5) ? blob(r, r.int(1, 200)) : "NULL"});`);
      for (let i = 0; i < 100; i++) s.push(`DELETE FROM person WHERE id = ${r.int(1, 700)};`);
      for (let i = 0; i < 100; i++) s.push(`UPDATE person SET score = ${(r.next() * 100).toFixed(2)}, note = ${q(text(r, r.int(0, 300)))} WHERE id = ${r.int(1, 700)};`);
      for (let i = 0; i < 60; i++) s.push(`INSERT INTO strict_t VALUES (${r.int(-1000, 1000)}, ${q(text(r, r.int(0, 20)))}, ${value(r, r.int(1, 20))});`);
      for (let i = 0; i < 60; i++) s.push(`INSERT INTO gen (a) VALUES (${r.int(-1000, 1000)});`);
      for (let i = 0; i < 80; i++) s.push(`INSERT INTO notes (body) VALUES (${q(Array.from({ length: r.int(3, 40) }, () => text(r, r.int(2, 9)).replace(/[^a-z]/gi, "")).join(" "))});`);
      s.push("COMMIT;", "ANALYZE;");
      return s.join("\n");
    },
  },
  {
    name: "freelist-512",
    pageSize: 512,
    covers: "512-byte pages, deep trees, a freelist of several trunks (deletes without VACUUM)",
    sql: (r) => {
      const s = ["PRAGMA page_size = 512;", "CREATE TABLE t (id INTEGER PRIMARY KEY, tag TEXT, body BLOB);", "CREATE INDEX t_tag ON t(tag);", "BEGIN;"];
      for (let i = 1; i <= 2000; i++) s.push(`INSERT INTO t VALUES (${i}, ${q(`${text(r, r.int(2, 12))}${i}`)}, ${blob(r, r.int(20, 160))});`);
      s.push("COMMIT;", "DELETE FROM t WHERE id % 3 <> 0 AND id < 1500;", "DELETE FROM t WHERE id BETWEEN 1600 AND 1850;");
      return s.join("\n");
    },
  },
  {
    name: "overflow-1024",
    pageSize: 1024,
    covers: "1024-byte pages, long overflow chains from table and index cells",
    sql: (r) => {
      const s = ["PRAGMA page_size = 1024;", "CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, body TEXT, data BLOB);", "CREATE INDEX docs_title ON docs(title);"];
      for (let i = 0; i < 9; i++) s.push(`INSERT INTO docs (title, body, data) VALUES (${q(`${i} ${text(r, i % 3 === 0 ? r.int(1500, 3000) : r.int(5, 60))}`)}, ${q(text(r, r.int(1000, 8000)))}, ${blob(r, r.int(8000, 30000))});`);
      return s.join("\n");
    },
  },
  {
    name: "autovac-full-1024",
    pageSize: 1024,
    covers: "auto_vacuum=FULL: pointer-map pages (two of them), overflow chains, an index, deletes",
    sql: (r) => {
      const s = ["PRAGMA page_size = 1024;", "PRAGMA auto_vacuum = FULL;", "CREATE TABLE a (id INTEGER PRIMARY KEY, k TEXT, v BLOB);", "CREATE INDEX a_k ON a(k);", "CREATE TABLE b (x, y);", "BEGIN;"];
      for (let i = 0; i < 750; i++) s.push(`INSERT INTO a (k, v) VALUES (${q(text(r, r.int(2, 40)))}, ${blob(r, r.chance(0.05) ? r.int(2000, 9000) : r.int(10, 200))});`);
      for (let i = 0; i < 200; i++) s.push(`INSERT INTO b VALUES (${value(r, r.int(1, 50))}, ${value(r, r.int(1, 50))});`);
      s.push("COMMIT;", "DELETE FROM a WHERE id % 4 = 0;", "DELETE FROM b WHERE rowid > 150;");
      return s.join("\n");
    },
  },
  {
    name: "autovac-incr-512",
    pageSize: 512,
    covers: "auto_vacuum=INCREMENTAL after a partial incremental_vacuum: pointer-map pages and a freelist together",
    sql: (r) => {
      const s = ["PRAGMA page_size = 512;", "PRAGMA auto_vacuum = INCREMENTAL;", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v BLOB);", "CREATE INDEX t_name ON t(name);", "BEGIN;"];
      for (let i = 0; i < 1200; i++) s.push(`INSERT INTO t (name, v) VALUES (${q(text(r, r.int(3, 30)))}, ${blob(r, r.chance(0.03) ? r.int(1000, 4000) : r.int(10, 120))});`);
      s.push("COMMIT;", "DELETE FROM t WHERE id % 5 < 3;", "PRAGMA incremental_vacuum(40);");
      return s.join("\n");
    },
  },
  {
    name: "without-rowid-2048",
    pageSize: 2048,
    covers: "WITHOUT ROWID tables (index-type b-trees holding rows, overflowing keys), a secondary index on one",
    sql: (r) => {
      const s = [
        "PRAGMA page_size = 2048;",
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB, n INT) WITHOUT ROWID;",
        "CREATE TABLE edge (src INT, dst INT, w REAL, PRIMARY KEY (src, dst)) WITHOUT ROWID;",
        "CREATE INDEX kv_n ON kv(n);",
        "BEGIN;",
      ];
      for (let i = 0; i < 500; i++) s.push(`INSERT INTO kv VALUES (${q(`${i}:${text(r, r.chance(0.05) ? r.int(1000, 3000) : r.int(1, 60))}`)}, ${blob(r, r.int(0, 400))}, ${r.int(0, 50)});`);
      for (let i = 0; i < 1000; i++) s.push(`INSERT OR IGNORE INTO edge VALUES (${r.int(0, 300)}, ${r.int(-1000, 1000)}, ${r.next().toFixed(5)});`);
      s.push("COMMIT;", "DELETE FROM kv WHERE n % 7 = 0;", "DELETE FROM edge WHERE src % 5 = 1;");
      return s.join("\n");
    },
  },
  {
    name: "fragmented-4096",
    pageSize: 4096,
    covers: "random inserts, deletes and updates of varying sizes: freeblocks and fragmented bytes on many pages",
    sql: (r) => {
      const s = ["PRAGMA page_size = 4096;", "CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT, b BLOB);", "CREATE INDEX f_a ON f(a);", "BEGIN;"];
      for (let i = 1; i <= 1200; i++) s.push(`INSERT INTO f VALUES (${i}, ${q(text(r, r.int(1, 120)))}, ${blob(r, r.int(0, 200))});`);
      for (let i = 0; i < 1500; i++) {
        const id = r.int(1, 1400);
        const op = r.int(0, 9);
        if (op < 6) s.push(`UPDATE f SET a = ${q(text(r, r.int(1, 130)))}, b = ${r.chance(0.5) ? blob(r, r.int(0, 210)) : "b"} WHERE id = ${id};`);
        else if (op < 8) s.push(`DELETE FROM f WHERE id = ${id};`);
        else s.push(`INSERT OR REPLACE INTO f VALUES (${id}, ${q(text(r, r.int(1, 120)))}, ${blob(r, r.int(0, 200))});`);
      }
      s.push("COMMIT;");
      return s.join("\n");
    },
  },
  {
    name: "bigrowid-8192",
    pageSize: 8192,
    covers: "rowids across the whole 64-bit range (negative, 0, ±2^63 edges), an index",
    sql: (r) => {
      const ids = new Set<string>(["9223372036854775807", "-9223372036854775808", "-1", "0", "1", "2147483647", "-2147483648", "4294967296", "-4294967296"]);
      for (let e = 8; e <= 62; e += 3) {
        ids.add((1n << BigInt(e)).toString());
        ids.add((-(1n << BigInt(e)) - 1n).toString());
      }
      while (ids.size < 700) {
        const v = (BigInt(r.int(0, 0xffffffff)) << 32n) | BigInt(r.int(0, 0xffffffff));
        ids.add(BigInt.asIntN(64, v).toString());
      }
      const s = ["PRAGMA page_size = 8192;", "CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT);", "CREATE TABLE neg (a INTEGER PRIMARY KEY, b);", "BEGIN;"];
      for (const id of ids) s.push(`INSERT INTO r VALUES (${id}, ${q(text(r, r.int(5, 100)))});`);
      for (let i = 1; i <= 300; i++) s.push(`INSERT INTO neg VALUES (${-i * 1_000_003}, ${value(r, r.int(1, 60))});`);
      s.push("COMMIT;", "CREATE INDEX r_v ON r(v);");
      return s.join("\n");
    },
  },
  {
    name: "wide-16384",
    pageSize: 16384,
    covers: "a 300-column table (record headers over 127 bytes), a three-column index",
    sql: (r) => {
      const cols = Array.from({ length: 300 }, (_, i) => `c${i}`);
      const s = ["PRAGMA page_size = 16384;", `CREATE TABLE wide (${cols.join(", ")});`, "CREATE INDEX wide_3 ON wide(c5, c10, c200);", "BEGIN;"];
      for (let i = 0; i < 70; i++) s.push(`INSERT INTO wide VALUES (${cols.map(() => (r.chance(0.3) ? "NULL" : value(r, r.int(0, 12)))).join(", ")});`);
      s.push("COMMIT;", "DELETE FROM wide WHERE rowid % 9 = 0;");
      return s.join("\n");
    },
  },
  {
    name: "mixed-32768",
    pageSize: 32768,
    covers: "32 KiB pages: overflowing blobs and text, small rows, an index",
    sql: (r) => {
      const s = ["PRAGMA page_size = 32768;", "CREATE TABLE m (id INTEGER PRIMARY KEY, name TEXT, data BLOB);", "CREATE INDEX m_name ON m(name);", "BEGIN;"];
      for (let i = 0; i < 250; i++) s.push(`INSERT INTO m (name, data) VALUES (${q(text(r, r.int(3, 50)))}, ${blob(r, i % 60 === 0 ? r.int(40000, 90000) : r.int(1, 300))});`);
      s.push("COMMIT;", "DELETE FROM m WHERE id % 11 = 0;");
      return s.join("\n");
    },
  },
  {
    name: "mixed-65536",
    pageSize: 65536,
    covers: "64 KiB pages (stored as 1): overflowing blobs, small rows, an index",
    sql: (r) => {
      const s = ["PRAGMA page_size = 65536;", "CREATE TABLE m (id INTEGER PRIMARY KEY, name TEXT, data BLOB);", "CREATE INDEX m_name ON m(name);", "CREATE TABLE s (k TEXT PRIMARY KEY, v) WITHOUT ROWID;", "BEGIN;"];
      for (let i = 0; i < 300; i++) s.push(`INSERT INTO m (name, data) VALUES (${q(text(r, r.int(3, 50)))}, ${blob(r, i % 100 === 0 ? r.int(70000, 140000) : r.int(1, 300))});`);
      for (let i = 0; i < 100; i++) s.push(`INSERT INTO s VALUES (${q(`k${i}${text(r, r.int(0, 40))}`)}, ${value(r, r.int(1, 80))});`);
      s.push("COMMIT;");
      return s.join("\n");
    },
  },
  {
    name: "reserved-1024",
    pageSize: 1024,
    cliOnly: true,
    covers: "16 reserved bytes per page (usable size 1008), overflow chains, an index",
    sql: (r) => {
      const s = ["PRAGMA page_size = 1024;", ".filectrl reserve_bytes 16", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v BLOB);", "CREATE INDEX t_name ON t(name);", "BEGIN;"];
      for (let i = 0; i < 300; i++) s.push(`INSERT INTO t (name, v) VALUES (${q(text(r, r.int(3, 40)))}, ${blob(r, r.chance(0.03) ? r.int(2000, 6000) : r.int(1, 150))});`);
      s.push("COMMIT;", "DELETE FROM t WHERE id % 6 = 0;");
      return s.join("\n");
    },
  },
  {
    name: "view-last-1024",
    pageSize: 1024,
    covers: "a view created last (SQLite's schema hash then lists a root of 0 first: quick_check's partial mode), a freelist",
    sql: (r) => {
      const s = ["PRAGMA page_size = 1024;", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);", "CREATE INDEX t_v ON t(v);", "BEGIN;"];
      for (let i = 0; i < 400; i++) s.push(`INSERT INTO t (v) VALUES (${q(text(r, r.int(5, 80)))});`);
      s.push("COMMIT;", "DELETE FROM t WHERE id % 3 = 0 OR id > 300;", "CREATE VIEW t_long AS SELECT id FROM t WHERE length(v) > 40;");
      return s.join("\n");
    },
  },
  {
    name: "utf16-4096",
    pageSize: 4096,
    covers: "UTF-16le text encoding (schema and rows), overflowing text, an index on text",
    sql: (r) => {
      const s = ["PRAGMA encoding = 'UTF-16le';", "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT, body TEXT);", "CREATE INDEX u_name ON u(name);", "BEGIN;"];
      for (let i = 0; i < 400; i++) s.push(`INSERT INTO u (name, body) VALUES (${q(text(r, r.int(2, 30), true))}, ${q(text(r, r.chance(0.03) ? r.int(3000, 8000) : r.int(0, 200), true))});`);
      s.push("COMMIT;", "DELETE FROM u WHERE id % 4 = 1;");
      return s.join("\n");
    },
  },
];

export type Writer = "sqlite3-cli" | "sql.js";

let sqlPromise: Promise<SqlJsStatic> | undefined;
const sqlJs = (): Promise<SqlJsStatic> => (sqlPromise ??= initSqlJs());

function writeWithCli(sql: string, dir: string, name: string): Uint8Array {
  const path = join(dir, `${name}.db`);
  rmSync(path, { force: true });
  // synchronous=OFF: no fsync per transaction (it does not change what is written).
  execFileSync("sqlite3", ["-batch", "-bail", path], { input: `PRAGMA synchronous = OFF;\n${sql}`, stdio: ["pipe", "ignore", "pipe"], maxBuffer: 64 * 1024 * 1024 });
  return new Uint8Array(readFileSync(path));
}

async function writeWithSqlJs(sql: string): Promise<Uint8Array> {
  const SQL = await sqlJs();
  const db = new SQL.Database();
  try {
    db.exec(sql);
    return db.export();
  } finally {
    db.close();
  }
}

// ---- a small SQLite page parser (for aiming; sound inputs only) -----------------------------

const u16 = (b: Uint8Array, o: number): number => ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
const u32 = (b: Uint8Array, o: number): number => (((b[o] ?? 0) << 24) | ((b[o + 1] ?? 0) << 16) | ((b[o + 2] ?? 0) << 8) | (b[o + 3] ?? 0)) >>> 0;

/** SQLite varint at `o`: [value, length]. */
function varint(b: Uint8Array, o: number): [bigint, number] {
  let v = 0n;
  for (let i = 0; i < 8; i++) {
    const x = b[o + i] ?? 0;
    v = (v << 7n) | BigInt(x & 0x7f);
    if ((x & 0x80) === 0) return [v, i + 1];
  }
  return [(v << 8n) | BigInt(b[o + 8] ?? 0), 9];
}

export interface DbHeader {
  pageSize: number;
  reserved: number;
  usable: number;
  pageCount: number;
  freeTrunk: number;
  freeCount: number;
  largestRoot: number;
  incremental: number;
  encoding: number;
  schemaFormat: number;
}

export function readHeader(b: Uint8Array): DbHeader {
  const raw = u16(b, 16);
  const pageSize = raw === 1 ? 65536 : raw;
  const reserved = b[20] ?? 0;
  return {
    pageSize,
    reserved,
    usable: pageSize - reserved,
    pageCount: u32(b, 28),
    freeTrunk: u32(b, 32),
    freeCount: u32(b, 36),
    largestRoot: u32(b, 52),
    incremental: u32(b, 64),
    encoding: u32(b, 56),
    schemaFormat: u32(b, 44),
  };
}

/** Bytes of a payload of `p` bytes kept on the b-tree page (the rest overflows). */
function localPayload(p: number, usable: number, table: boolean): number {
  const x = table ? usable - 35 : Math.floor(((usable - 12) * 64) / 255) - 23;
  if (p <= x) return p;
  const m = Math.floor(((usable - 12) * 32) / 255) - 23;
  const k = m + ((p - m) % (usable - 4));
  return k <= x ? k : m;
}

export interface Cell {
  /** Offset of the cell in its page. */
  offset: number;
  /** Absolute offset of the left-child pointer (interior pages). */
  childAt?: number;
  child?: number;
  /** Absolute offset and length of the payload-size varint (not on table-interior pages). */
  sizeAt?: number;
  sizeLen?: number;
  payload?: number;
  /** Absolute offset and length of the rowid varint (table pages). */
  rowidAt?: number;
  rowidLen?: number;
  /** Absolute offset of the payload and the bytes of it on this page. */
  payloadAt?: number;
  local?: number;
  /** Absolute offset of the first-overflow-page pointer. */
  overflowAt?: number;
  overflow?: number;
  /** Bytes the cell takes on its page (at least 4, as SQLite allocates). */
  size: number;
}

export interface BtreePage {
  role: "btree";
  page: number;
  tree: string;
  depth: number;
  parent: number;
  type: number;
  /** Absolute offset of the page header (page 1: 100 bytes in). */
  hdr: number;
  ncell: number;
  firstFreeblock: number;
  contentStart: number;
  frag: number;
  /** Absolute offset of the cell-pointer array. */
  ptrs: number;
  rightChildAt?: number;
  rightChild?: number;
  cells: Cell[];
  freeblocks: { offset: number; size: number }[];
}
export interface OverflowPage {
  role: "overflow";
  page: number;
  tree: string;
  next: number;
}
export interface TrunkPage {
  role: "trunk";
  page: number;
  next: number;
  leaves: number[];
}
export interface OtherPage {
  role: "freeleaf" | "ptrmap" | "lockbyte";
  page: number;
}
export type PageInfo = BtreePage | OverflowPage | TrunkPage | OtherPage;

export interface ParsedDb {
  header: DbHeader;
  pages: Map<number, PageInfo>;
  btree: BtreePage[];
  interior: BtreePage[];
  /** Every overflow pointer: in a cell, or an overflow page's next-page field (last: 0). */
  overflowPtrs: { at: number; page: number; value: number; tree: string }[];
  trunks: TrunkPage[];
  ptrmaps: number[];
}

/** Walk every b-tree (page 1 and the schema's root pages), overflow chain, freelist and pointer map. */
export function parseDb(b: Uint8Array, roots: { name: string; root: number }[]): ParsedDb {
  const header = readHeader(b);
  const { pageSize, usable, pageCount } = header;
  const pages = new Map<number, PageInfo>();
  const claim = (info: PageInfo) => {
    if (info.page < 1 || info.page > pageCount) throw new Error(`page ${info.page} out of range (${info.role})`);
    const had = pages.get(info.page);
    if (had) throw new Error(`page ${info.page} claimed as ${had.role} and ${info.role}`);
    pages.set(info.page, info);
  };
  const btree: BtreePage[] = [];
  const overflowPtrs: ParsedDb["overflowPtrs"] = [];

  const walkOverflow = (first: number, bytes: number, tree: string) => {
    let page = first;
    const n = Math.ceil(bytes / (usable - 4));
    for (let i = 0; i < n; i++) {
      const at = (page - 1) * pageSize;
      const next = u32(b, at);
      claim({ role: "overflow", page, tree, next });
      overflowPtrs.push({ at, page, value: next, tree });
      page = next;
    }
  };

  const walkTree = (root: number, tree: string) => {
    const stack: { page: number; depth: number; parent: number }[] = [{ page: root, depth: 0, parent: 0 }];
    while (stack.length > 0) {
      const { page, depth, parent } = stack.pop()!;
      const start = (page - 1) * pageSize;
      const hdr = start + (page === 1 ? 100 : 0);
      const type = b[hdr] ?? 0;
      if (![2, 5, 10, 13].includes(type)) throw new Error(`page ${page} of ${tree}: type ${type}`);
      const interior = type === 2 || type === 5;
      const ncell = u16(b, hdr + 3);
      const info: BtreePage = {
        role: "btree",
        page,
        tree,
        depth,
        parent,
        type,
        hdr,
        ncell,
        firstFreeblock: u16(b, hdr + 1),
        contentStart: u16(b, hdr + 5) || 65536,
        frag: b[hdr + 7] ?? 0,
        ptrs: hdr + (interior ? 12 : 8),
        cells: [],
        freeblocks: [],
      };
      if (interior) {
        info.rightChildAt = hdr + 8;
        info.rightChild = u32(b, hdr + 8);
      }
      for (let fb = info.firstFreeblock; fb !== 0 && info.freeblocks.length < 10_000; fb = u16(b, start + fb)) info.freeblocks.push({ offset: fb, size: u16(b, start + fb + 2) });
      claim(info);
      btree.push(info);
      for (let i = 0; i < ncell; i++) {
        const offset = u16(b, info.ptrs + 2 * i);
        let p = start + offset;
        const cell: Cell = { offset, size: 0 };
        if (interior) {
          cell.childAt = p;
          cell.child = u32(b, p);
          p += 4;
        }
        if (type === 5) {
          const [, len] = varint(b, p);
          cell.rowidAt = p;
          cell.rowidLen = len;
        } else {
          const [size, len] = varint(b, p);
          cell.sizeAt = p;
          cell.sizeLen = len;
          cell.payload = Number(size);
          p += len;
          if (type === 13) {
            const [, rlen] = varint(b, p);
            cell.rowidAt = p;
            cell.rowidLen = rlen;
            p += rlen;
          }
          const local = localPayload(cell.payload, usable, type === 13);
          cell.payloadAt = p;
          cell.local = local;
          if (local < cell.payload) {
            cell.overflowAt = p + local;
            cell.overflow = u32(b, p + local);
            overflowPtrs.push({ at: cell.overflowAt, page, value: cell.overflow, tree });
            walkOverflow(cell.overflow, cell.payload - local, tree);
          }
        }
        cell.size = Math.max(4, (type === 5 ? cell.rowidAt! + cell.rowidLen! : cell.payloadAt! + cell.local! + (cell.overflowAt !== undefined ? 4 : 0)) - (start + offset));
        info.cells.push(cell);
      }
      const children = [...info.cells.map((c) => c.child), info.rightChild].filter((c): c is number => c !== undefined);
      for (const c of children.reverse()) stack.push({ page: c, depth: depth + 1, parent: page });
    }
  };

  walkTree(1, "sqlite_schema");
  for (const r of roots) if (r.root > 1) walkTree(r.root, r.name);

  const trunks: TrunkPage[] = [];
  for (let t = header.freeTrunk; t !== 0; ) {
    const at = (t - 1) * pageSize;
    const n = u32(b, at + 4);
    const leaves = Array.from({ length: n }, (_, i) => u32(b, at + 8 + 4 * i));
    const trunk: TrunkPage = { role: "trunk", page: t, next: u32(b, at), leaves };
    claim(trunk);
    trunks.push(trunk);
    for (const l of leaves) claim({ role: "freeleaf", page: l });
    t = trunk.next;
  }

  const lockByte = Math.floor(0x40000000 / pageSize) + 1;
  if (lockByte <= pageCount) claim({ role: "lockbyte", page: lockByte });
  const ptrmaps: number[] = [];
  if (header.largestRoot !== 0) {
    const per = Math.floor(usable / 5);
    for (let p = 2; p <= pageCount; p += per + 1) {
      if (p === lockByte) p++;
      claim({ role: "ptrmap", page: p });
      ptrmaps.push(p);
    }
  }
  const unclaimed: number[] = [];
  for (let p = 1; p <= pageCount; p++) if (!pages.has(p)) unclaimed.push(p);
  if (unclaimed.length > 0) throw new Error(`pages never reached: ${unclaimed.slice(0, 10).join(", ")}`);
  return { header, pages, btree, interior: btree.filter((p) => p.type === 2 || p.type === 5), overflowPtrs, trunks, ptrmaps };
}

// ---- bases ----------------------------------------------------------------------------------

export interface Base {
  /** shape/writer */
  name: string;
  shape: Shape;
  writer: Writer;
  bytes: Uint8Array;
  parsed: ParsedDb;
}

async function rootsOf(bytes: Uint8Array): Promise<{ name: string; root: number }[]> {
  const SQL = await sqlJs();
  const db = new SQL.Database(bytes);
  try {
    const rows = db.exec("SELECT name, rootpage FROM sqlite_schema WHERE rootpage > 0 ORDER BY rootpage")[0]?.values ?? [];
    return rows.map((r) => ({ name: String(r[0]), root: Number(r[1]) }));
  } finally {
    db.close();
  }
}

/** Parse a sound database image (its root pages from sql.js). */
export async function parseImage(bytes: Uint8Array): Promise<ParsedDb> {
  return parseDb(bytes, await rootsOf(bytes));
}

/** Every shape written by the sqlite3 CLI and (unless cliOnly) by sql.js, parsed. */
export async function makeBases(seed = DEFAULT_SEED): Promise<Base[]> {
  const dir = mkdtempSync(join(tmpdir(), "structure-bases-"));
  try {
    const bases: Base[] = [];
    for (const shape of SHAPES) {
      for (const writer of ["sqlite3-cli", "sql.js"] as const) {
        if (writer === "sql.js" && shape.cliOnly) continue;
        const sql = shape.sql(new Rng(seedOf(seed, "shape", shape.name)));
        const bytes = writer === "sqlite3-cli" ? writeWithCli(sql, dir, shape.name) : await writeWithSqlJs(sql);
        const name = `${shape.name}/${writer}`;
        if (bytes[18] !== 1 || bytes[19] !== 1) throw new Error(`${name}: not in rollback-journal mode`);
        if (readHeader(bytes).pageSize !== shape.pageSize) throw new Error(`${name}: page size ${readHeader(bytes).pageSize}, wanted ${shape.pageSize}`);
        let parsed: ParsedDb;
        try {
          parsed = parseDb(bytes, await rootsOf(bytes));
        } catch (err) {
          throw new Error(`${name}: ${(err as Error).message}`);
        }
        bases.push({ name, shape, writer, bytes, parsed });
      }
    }
    return bases;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- mutations ------------------------------------------------------------------------------

export const KINDS = [
  "none",
  "page.type",
  "page.freeblock",
  "page.ncell",
  "page.content",
  "page.frag",
  "cell.pointer",
  "cell.child",
  "page.rightchild",
  "cell.size",
  "cell.rowid",
  "cell.payload",
  "cell.drop",
  "page.unused",
  "overflow.pointer",
  "freelist.trunk",
  "freelist.count",
  "freelist.leaf",
  "ptrmap.entry",
  "db.pagesize",
  "db.pagecount",
  "db.freetrunk",
  "db.freecount",
  "db.schemaformat",
  "db.encoding",
  "db.reserved",
  "db.fractions",
  "db.autovacuum",
  "db.validfor",
  "db.ignored",
  "page.zero",
  "freeleaf.garbage",
  "page.swap",
  "page.swap-alike",
  "file.truncate",
  "file.extend",
  "byte.random",
] as const;
export type Kind = (typeof KINDS)[number];

/** Files per base and kind (the unmutated base: one). */
const VARIANTS: Partial<Record<Kind, number>> = {
  none: 1,
  "byte.random": 8,
  "cell.payload": 5,
  "cell.drop": 4,
  "page.unused": 3,
  "page.zero": 3,
  "page.swap": 3,
  "page.swap-alike": 3,
  "cell.pointer": 3,
  "cell.child": 3,
  "overflow.pointer": 4,
  "freelist.trunk": 3,
  "freelist.count": 3,
  "freelist.leaf": 4,
  "ptrmap.entry": 6,
  "db.ignored": 3,
};
const DEFAULT_VARIANTS = 2;

export interface CorpusCase {
  index: number;
  /** base/kind#variant: stable across seeds. */
  id: string;
  base: string;
  kind: Kind;
  page?: number;
  offset?: number;
  /** What was changed: field, old → new. */
  what: string;
  bytes: Uint8Array;
}

interface Mutation {
  page?: number;
  offset?: number;
  what: string;
  bytes: Uint8Array;
}

const hex = (v: number): string => `0x${v.toString(16)}`;

class Mutator {
  readonly out: Uint8Array;
  constructor(
    readonly base: Base,
    readonly r: Rng,
  ) {
    this.out = base.bytes.slice();
  }
  get h(): DbHeader {
    return this.base.parsed.header;
  }
  pageOf(offset: number): number {
    return Math.floor(offset / this.h.pageSize) + 1;
  }
  /** Write `value` big-endian in `width` bytes at `offset`; describe it. */
  set(offset: number, width: 1 | 2 | 4, value: number, field: string): Mutation {
    const old = width === 1 ? (this.out[offset] ?? 0) : width === 2 ? u16(this.out, offset) : u32(this.out, offset);
    const v = width === 4 ? value >>> 0 : value & (width === 2 ? 0xffff : 0xff);
    for (let i = 0; i < width; i++) this.out[offset + i] = (v >>> (8 * (width - 1 - i))) & 0xff;
    return { page: this.pageOf(offset), offset, what: `${field} ${old} → ${v}`, bytes: this.out };
  }
  /** A page number that exists, preferring one of another role now and then. */
  anyPage(): number {
    return this.r.int(1, this.h.pageCount);
  }
  /** A pointer value that is wrong in one of the usual ways. */
  badPointer(self: number, current: number, extra: number[] = []): number {
    const choices = [0, self, this.h.pageCount + this.r.int(1, 5), this.anyPage(), this.anyPage(), 0xffffffff, 1, current + 1, current - 1, ...extra];
    return this.r.pick(choices.filter((v) => v !== current && v >= 0));
  }
}

function mutate(kind: Kind, base: Base, r: Rng): Mutation | undefined {
  const m = new Mutator(base, r);
  const p = base.parsed;
  const h = p.header;
  const { pageSize, usable } = h;
  const withCells = p.btree.filter((x) => x.ncell > 0);
  switch (kind) {
    case "none":
      return { what: "unchanged", bytes: m.out };
    case "page.type": {
      const pg = r.pick(p.btree);
      const old = m.out[pg.hdr] ?? 0;
      return m.set(pg.hdr, 1, r.pick([2, 5, 10, 13, 0, 1, 0x0b, 0xff, r.int(0, 255)].filter((v) => v !== old)), `page ${pg.page} (${pg.tree}) type byte`);
    }
    case "page.freeblock": {
      const pg = r.pick(p.btree);
      const hdrEnd = pg.ptrs - (pg.page - 1) * pageSize + 2 * pg.ncell;
      const cur = pg.firstFreeblock;
      const choices = [r.int(1, pageSize - 1), pageSize - r.int(1, 4), r.int(1, Math.max(1, hdrEnd)), cur + r.int(1, 4), Math.max(1, cur - r.int(1, 4)), usable - 2];
      if (pg.cells.length > 0) choices.push(r.pick(pg.cells).offset, r.pick(pg.cells).offset + 2);
      if (cur !== 0) choices.push(0);
      if (pg.contentStart < pageSize) choices.push(pg.contentStart);
      return m.set(pg.hdr + 1, 2, r.pick(choices.filter((v) => v !== cur)), `page ${pg.page} (${pg.tree}) first freeblock`);
    }
    case "page.ncell": {
      const pg = r.pick(p.btree);
      const n = pg.ncell;
      const choices = [n + 1, n + r.int(2, 40), 0xffff, Math.floor(pageSize / 2)];
      if (n > 0) choices.push(n - 1, 0, r.int(0, n - 1));
      return m.set(pg.hdr + 3, 2, r.pick(choices.filter((v) => v !== n && v <= 0xffff)), `page ${pg.page} (${pg.tree}) cell count`);
    }
    case "page.content": {
      const pg = r.pick(p.btree);
      const cur = pg.contentStart === 65536 ? 0 : pg.contentStart;
      const hdrEnd = pg.ptrs - (pg.page - 1) * pageSize + 2 * pg.ncell;
      const choices = [cur + r.int(1, 40), cur - r.int(1, 40), 0, Math.max(0, hdrEnd - r.int(1, 8)), usable + r.int(1, 50), r.int(0, 0xffff), hdrEnd];
      return m.set(pg.hdr + 5, 2, r.pick(choices.filter((v) => v !== cur && v >= 0 && v <= 0xffff)), `page ${pg.page} (${pg.tree}) cell content start`);
    }
    case "page.frag": {
      const pg = r.pick(p.btree);
      const choices = [pg.frag + 1, pg.frag + r.int(2, 9), 61, 255, r.int(0, 255)];
      if (pg.frag > 0) choices.push(0, pg.frag - 1);
      return m.set(pg.hdr + 7, 1, r.pick(choices.filter((v) => v !== pg.frag && v <= 255)), `page ${pg.page} (${pg.tree}) fragmented bytes`);
    }
    case "cell.pointer": {
      if (withCells.length === 0) return undefined;
      const pg = r.pick(withCells);
      const i = r.int(0, pg.ncell - 1);
      const cur = pg.cells[i]!.offset;
      const hdrEnd = pg.ptrs - (pg.page - 1) * pageSize + 2 * pg.ncell;
      const choices = [cur + r.int(1, 8), cur - r.int(1, 8), 0, r.int(0, pageSize - 1), usable - r.int(0, 3), pageSize + r.int(0, 100), Math.max(0, hdrEnd - 2), pg.contentStart - 4];
      if (pg.ncell > 1) choices.push(pg.cells[(i + r.int(1, pg.ncell - 1)) % pg.ncell]!.offset);
      if (pg.freeblocks.length > 0) choices.push(r.pick(pg.freeblocks).offset);
      return m.set(pg.ptrs + 2 * i, 2, r.pick(choices.filter((v) => v !== cur && v >= 0 && v <= 0xffff)), `page ${pg.page} (${pg.tree}) cell pointer ${i}/${pg.ncell}`);
    }
    case "cell.child": {
      const pages = p.interior.filter((x) => x.ncell > 0);
      if (pages.length === 0) return undefined;
      const pg = r.pick(pages);
      const i = r.int(0, pg.ncell - 1);
      const cell = pg.cells[i]!;
      const siblings = [...pg.cells.map((c) => c.child!), pg.rightChild!];
      const v = m.badPointer(pg.page, cell.child!, [r.pick(siblings), pg.parent || 1, r.pick(siblings)]);
      return m.set(cell.childAt!, 4, v, `page ${pg.page} (${pg.tree}) cell ${i} left child`);
    }
    case "page.rightchild": {
      if (p.interior.length === 0) return undefined;
      const pg = r.pick(p.interior);
      const siblings = pg.cells.map((c) => c.child!);
      const extra = siblings.length > 0 ? [r.pick(siblings), r.pick(siblings)] : [];
      return m.set(pg.rightChildAt!, 4, m.badPointer(pg.page, pg.rightChild!, [...extra, pg.parent || 1]), `page ${pg.page} (${pg.tree}) right child`);
    }
    case "cell.size":
    case "cell.rowid": {
      const cells = withCells.flatMap((pg) => pg.cells.filter((c) => (kind === "cell.size" ? c.sizeAt !== undefined : c.rowidAt !== undefined)).map((c) => ({ pg, c })));
      if (cells.length === 0) return undefined;
      const { pg, c } = r.pick(cells);
      const at = kind === "cell.size" ? c.sizeAt! : c.rowidAt!;
      const len = kind === "cell.size" ? c.sizeLen! : c.rowidLen!;
      // Change one byte of the varint, keeping its length (the continuation bits stay).
      const j = r.int(0, len - 1);
      const old = m.out[at + j] ?? 0;
      const mask = j === len - 1 ? (len === 9 ? 0xff : 0x7f) : 0x7f;
      let v = old;
      while (v === old) v = (old & ~mask & 0xff) | (r.chance(0.5) ? (old & mask) ^ (1 << r.int(0, mask === 0xff ? 7 : 6)) : r.int(0, mask));
      const field = kind === "cell.size" ? `payload size (${c.payload})` : "rowid";
      const mut = m.set(at + j, 1, v, `page ${pg.page} (${pg.tree}) cell at ${c.offset} ${field} varint byte ${j}/${len}`);
      return mut;
    }
    case "cell.payload": {
      // A byte of a record (header or body) on the b-tree page: SQLite's quick_check looks at
      // few of them (NOT NULL columns, the schema's SQL), so most of these files are sound.
      const cells = withCells.flatMap((pg) => pg.cells.filter((c) => (c.local ?? 0) > 0).map((c) => ({ pg, c })));
      if (cells.length === 0) return undefined;
      const { pg, c } = r.pick(cells);
      const j = r.chance(0.5) ? r.int(0, Math.min(c.local! - 1, 8)) : r.int(0, c.local! - 1);
      const old = m.out[c.payloadAt! + j] ?? 0;
      return m.set(c.payloadAt! + j, 1, r.chance(0.5) ? r.pick([0, 1, 7, 8, 9, 12, 13, 0x80, 0xff].filter((v) => v !== old)) : (old + r.int(1, 255)) & 0xff, `page ${pg.page} (${pg.tree}) cell at ${c.offset} payload byte ${j}/${c.payload}`);
    }
    case "cell.drop": {
      // Remove one cell from a leaf page and give its bytes back as SQLite would (freeblock or
      // the unallocated gap): the page stays well formed, the tree loses one row or index entry.
      const leaves = p.btree.filter((x) => (x.type === 10 || x.type === 13) && x.ncell >= 2);
      if (leaves.length === 0) return undefined;
      const pg = r.pick(leaves);
      const i = r.int(0, pg.ncell - 1);
      const cell = pg.cells[i]!;
      if (cell.overflowAt !== undefined) return undefined;
      const start = (pg.page - 1) * pageSize;
      let blocks = pg.freeblocks.map((f) => ({ ...f }));
      let content = pg.contentStart;
      if (cell.offset === content) {
        content += cell.size;
        for (let first = blocks[0]; first && first.offset === content; first = blocks[0]) {
          content += first.size;
          blocks = blocks.slice(1);
        }
      } else {
        blocks.push({ offset: cell.offset, size: cell.size });
        blocks.sort((a, b) => a.offset - b.offset);
        const merged: { offset: number; size: number }[] = [];
        for (const blk of blocks) {
          const prev = merged[merged.length - 1];
          const gap = prev ? blk.offset - (prev.offset + prev.size) : 99;
          if (gap === 0) prev!.size += blk.size;
          else if (gap < 4) return undefined; // would need fragment bookkeeping
          else merged.push({ ...blk });
        }
        blocks = merged;
      }
      m.out.copyWithin(pg.ptrs + 2 * i, pg.ptrs + 2 * (i + 1), pg.ptrs + 2 * pg.ncell);
      m.out.fill(0, pg.ptrs + 2 * (pg.ncell - 1), pg.ptrs + 2 * pg.ncell);
      m.set(pg.hdr + 3, 2, pg.ncell - 1, "cell count");
      m.set(pg.hdr + 5, 2, content === 65536 ? 0 : content, "content start");
      m.set(pg.hdr + 1, 2, blocks[0]?.offset ?? 0, "first freeblock");
      blocks.forEach((blk, k) => {
        m.set(start + blk.offset, 2, blocks[k + 1]?.offset ?? 0, "freeblock next");
        m.set(start + blk.offset + 2, 2, blk.size, "freeblock size");
      });
      return { page: pg.page, offset: start + cell.offset, what: `page ${pg.page} (${pg.tree}) cell ${i}/${pg.ncell} (${cell.size} bytes at ${cell.offset}) removed, its space freed`, bytes: m.out };
    }
    case "page.unused": {
      // Bytes SQLite never reads: the gap before the cell content, a freeblock's body, the
      // reserved tail of a page. Every file of this kind should be sound.
      const spots: { pg: BtreePage; from: number; to: number; where: string }[] = [];
      for (const pg of p.btree) {
        const start = (pg.page - 1) * pageSize;
        const gapFrom = pg.ptrs - start + 2 * pg.ncell;
        if (pg.contentStart > gapFrom) spots.push({ pg, from: start + gapFrom, to: start + Math.min(pg.contentStart, usable), where: "unallocated gap" });
        for (const f of pg.freeblocks) if (f.size > 4) spots.push({ pg, from: start + f.offset + 4, to: start + f.offset + f.size, where: `freeblock at ${f.offset} body` });
        if (h.reserved > 0) spots.push({ pg, from: start + usable, to: start + pageSize, where: "reserved bytes" });
      }
      if (spots.length === 0) return undefined;
      const spot = r.pick(spots);
      const n = r.int(1, Math.min(16, spot.to - spot.from));
      const at = r.int(spot.from, spot.to - n);
      m.out.set(r.bytes(n), at);
      return { page: spot.pg.page, offset: at, what: `page ${spot.pg.page} (${spot.pg.tree}) ${spot.where}: ${n} random bytes at ${at - (spot.pg.page - 1) * pageSize}`, bytes: m.out };
    }
    case "overflow.pointer": {
      if (p.overflowPtrs.length === 0) return undefined;
      const ptr = r.pick(p.overflowPtrs);
      const others = p.overflowPtrs.map((x) => x.value).filter((x) => x !== 0);
      const skip = p.overflowPtrs.find((x) => x.page === ptr.value)?.value;
      const extra = [r.pick(others), r.pick(others), ...(skip ? [skip] : [])];
      const where = ptr.at % pageSize === 0 && p.pages.get(ptr.page)?.role === "overflow" ? `overflow page ${ptr.page} next` : `page ${ptr.page} (${ptr.tree}) cell's first overflow page`;
      return m.set(ptr.at, 4, m.badPointer(ptr.page, ptr.value, extra), where);
    }
    case "freelist.trunk": {
      if (p.trunks.length === 0) return undefined;
      const t = r.pick(p.trunks);
      const extra = [...(t.leaves.length > 0 ? [r.pick(t.leaves)] : []), r.pick(p.trunks).page, p.btree.length > 0 ? r.pick(p.btree).page : 1];
      return m.set((t.page - 1) * pageSize, 4, m.badPointer(t.page, t.next, extra), `freelist trunk ${t.page} next trunk`);
    }
    case "freelist.count": {
      if (p.trunks.length === 0) return undefined;
      const t = r.pick(p.trunks);
      const n = t.leaves.length;
      const max = usable / 4 - 2;
      const choices = [n + 1, n + r.int(2, 20), max, max + 1, 0xffffffff, r.int(0, 1000)];
      if (n > 0) choices.push(n - 1, 0);
      return m.set((t.page - 1) * pageSize + 4, 4, r.pick(choices.filter((v) => v !== n)), `freelist trunk ${t.page} leaf count`);
    }
    case "freelist.leaf": {
      const ts = p.trunks.filter((t) => t.leaves.length > 0);
      if (ts.length === 0) return undefined;
      const t = r.pick(ts);
      const i = r.int(0, t.leaves.length - 1);
      const all = p.trunks.flatMap((x) => x.leaves);
      const extra = [r.pick(all), r.pick(p.btree).page, r.pick(p.btree).page, ...(p.ptrmaps.length > 0 ? [r.pick(p.ptrmaps)] : [])];
      return m.set((t.page - 1) * pageSize + 8 + 4 * i, 4, m.badPointer(t.page, t.leaves[i]!, extra), `freelist trunk ${t.page} leaf ${i}/${t.leaves.length}`);
    }
    case "ptrmap.entry": {
      if (p.ptrmaps.length === 0) return undefined;
      const pm = r.pick(p.ptrmaps);
      const covered = Math.min(Math.floor(usable / 5), h.pageCount - pm);
      if (covered <= 0) return undefined;
      const i = r.int(0, covered - 1);
      const at = (pm - 1) * pageSize + 5 * i;
      if (r.chance(0.5)) {
        const old = m.out[at] ?? 0;
        return m.set(at, 1, r.pick([0, 1, 2, 3, 4, 5, 6, 0xff].filter((v) => v !== old)), `pointer map ${pm} entry for page ${pm + 1 + i}: type`);
      }
      return m.set(at + 1, 4, m.badPointer(pm, u32(m.out, at + 1), [r.pick(p.btree).page]), `pointer map ${pm} entry for page ${pm + 1 + i}: parent`);
    }
    case "db.pagesize": {
      const raw = u16(m.out, 16);
      const choices = [pageSize * 2 === 65536 ? 1 : pageSize * 2, pageSize / 2, 1000, 0, 256, 1, 0x8000, r.int(0, 0xffff)].filter((v) => v <= 0xffff && v >= 0 && v !== raw);
      return m.set(16, 2, r.pick(choices), "header page size");
    }
    case "db.pagecount": {
      const n = h.pageCount;
      const choices = [n + 1, n + r.int(2, 100), 0, 0xffffffff, r.int(1, n + 10)];
      if (n > 1) choices.push(n - 1, r.int(1, n - 1));
      return m.set(28, 4, r.pick(choices.filter((v) => v !== n)), "header page count");
    }
    case "db.freetrunk": {
      const extra = [...(p.trunks.length > 0 ? [r.pick(p.trunks).page] : []), ...p.trunks.flatMap((t) => t.leaves.slice(0, 1)), r.pick(p.btree).page];
      return m.set(32, 4, m.badPointer(1, h.freeTrunk, extra), "header first freelist trunk");
    }
    case "db.freecount": {
      const n = h.freeCount;
      const choices = [n + 1, n + r.int(2, 50), 0xffffffff, h.pageCount];
      if (n > 0) choices.push(n - 1, 0);
      return m.set(36, 4, r.pick(choices.filter((v) => v !== n)), "header freelist page count");
    }
    case "db.schemaformat":
      return m.set(44, 4, r.pick([0, 1, 2, 3, 4, 5, 255].filter((v) => v !== h.schemaFormat)), "header schema format");
    case "db.encoding":
      return m.set(56, 4, r.pick([0, 1, 2, 3, 4, 255].filter((v) => v !== h.encoding)), "header text encoding");
    case "db.reserved":
      return m.set(20, 1, r.pick([h.reserved + r.int(1, 32), 255, r.int(1, 64), ...(h.reserved > 0 ? [0, h.reserved - 1] : [])].filter((v) => v !== h.reserved && v <= 255)), "header reserved bytes per page");
    case "db.fractions": {
      const at = r.pick([21, 22, 23]);
      const old = m.out[at] ?? 0;
      return m.set(at, 1, r.pick([0, 32, 64, 255, r.int(0, 255)].filter((v) => v !== old)), `header payload fraction byte ${at}`);
    }
    case "db.autovacuum": {
      if (r.chance(0.3)) return m.set(64, 4, h.incremental === 0 ? 1 : 0, "header incremental-vacuum flag");
      const n = h.largestRoot;
      const choices = n === 0 ? [r.int(1, h.pageCount), h.pageCount, 1] : [0, n + 1, n - 1, r.int(1, h.pageCount)];
      return m.set(52, 4, r.pick(choices.filter((v) => v !== n && v >= 0)), "header largest root page (auto_vacuum)");
    }
    case "db.validfor": {
      // "version-valid-for" unlike the change counter: the header's page count is then not
      // trusted and SQLite uses the file's size, so a wrong count there does no harm.
      const counter = u32(m.out, 24);
      m.set(92, 4, counter + r.int(1, 1000), "header version-valid-for");
      const count = r.pick([0, h.pageCount + r.int(1, 100), Math.max(1, h.pageCount - 1), 0xffffffff]);
      const mut = m.set(28, 4, count, "header page count");
      return { page: 1, offset: 92, what: `version-valid-for ≠ change counter ${counter}, page count ${h.pageCount} → ${count}`, bytes: mut.bytes };
    }
    case "db.ignored": {
      const fields: [number, 1 | 2 | 4, string][] = [
        [24, 4, "header file change counter"],
        [48, 4, "header default cache size"],
        [60, 4, "header user_version"],
        [68, 4, "header application_id"],
        [72 + r.int(0, 19), 1, "header reserved-for-expansion byte"],
        [96, 4, "header SQLITE_VERSION_NUMBER"],
        [40, 4, "header schema cookie"],
      ];
      const [at, width, field] = r.pick(fields);
      return m.set(at, width, r.chance(0.5) ? r.int(0, 0xffff) : (u32(m.out, at) ^ (1 << r.int(0, 31))) >>> 0, field);
    }
    case "freeleaf.garbage": {
      const leaves = p.trunks.flatMap((t) => t.leaves);
      if (leaves.length === 0) return undefined;
      const pg = r.pick(leaves);
      const n = r.int(1, pageSize);
      const at = (pg - 1) * pageSize + r.int(0, pageSize - n);
      m.out.set(r.bytes(n), at);
      return { page: pg, offset: at, what: `freelist leaf page ${pg}: ${n} random bytes`, bytes: m.out };
    }
    case "page.zero": {
      const pg = r.chance(0.1) || h.pageCount === 1 ? 1 : r.int(2, h.pageCount);
      m.out.fill(0, (pg - 1) * pageSize, pg * pageSize);
      return { page: pg, offset: (pg - 1) * pageSize, what: `page ${pg} (${p.pages.get(pg)?.role ?? "?"}) zeroed`, bytes: m.out };
    }
    case "page.swap": {
      if (h.pageCount < 2) return undefined;
      const lo = r.chance(0.1) ? 1 : 2;
      const a = r.int(lo, h.pageCount);
      let c = a;
      while (c === a) c = r.int(lo, h.pageCount);
      const pa = base.bytes.subarray((a - 1) * pageSize, a * pageSize);
      m.out.set(base.bytes.subarray((c - 1) * pageSize, c * pageSize), (a - 1) * pageSize);
      m.out.set(pa, (c - 1) * pageSize);
      return { page: a, offset: (a - 1) * pageSize, what: `pages ${a} (${p.pages.get(a)?.role}) and ${c} (${p.pages.get(c)?.role}) swapped`, bytes: m.out };
    }
    case "page.swap-alike": {
      // Two pages of the same kind (same b-tree page type and tree, or both overflow, freelist
      // leaf, trunk or pointer-map pages): only the pointers to them give it away.
      const groups = new Map<string, number[]>();
      for (const info of p.pages.values()) {
        if (info.page === 1) continue;
        const key = info.role === "btree" ? `${info.role} ${info.type} ${r.chance(0.7) ? info.tree : ""}` : info.role;
        groups.set(key, [...(groups.get(key) ?? []), info.page]);
      }
      const usable2 = [...groups.entries()].filter(([, v]) => v.length >= 2);
      if (usable2.length === 0) return undefined;
      const [key, group] = r.pick(usable2);
      const a = r.pick(group);
      let c = a;
      while (c === a) c = r.pick(group);
      const pa = base.bytes.slice((a - 1) * pageSize, a * pageSize);
      m.out.set(base.bytes.subarray((c - 1) * pageSize, c * pageSize), (a - 1) * pageSize);
      m.out.set(pa, (c - 1) * pageSize);
      return { page: a, offset: (a - 1) * pageSize, what: `pages ${a} and ${c} (both ${key.trim()}) swapped`, bytes: m.out };
    }
    case "file.truncate": {
      const n = h.pageCount;
      const len = r.pick([...(n > 1 ? [(n - 1) * pageSize, r.int(1, n - 1) * pageSize] : []), r.int(100, n * pageSize - 1), n * pageSize - r.int(1, 512)].filter((v) => v >= 100 && v < n * pageSize));
      return { page: m.pageOf(len), offset: len, what: `truncated to ${len} of ${n * pageSize} bytes`, bytes: base.bytes.slice(0, len) };
    }
    case "file.extend": {
      // Bytes past the pages the header counts (valid: its version-valid-for matches): SQLite
      // reads only the pages the header declares.
      const n = r.pick([pageSize, pageSize * r.int(2, 3), r.int(1, pageSize - 1)]);
      const tail = r.chance(0.5) ? r.bytes(n) : new Uint8Array(n);
      const out = new Uint8Array(base.bytes.length + n);
      out.set(base.bytes);
      out.set(tail, base.bytes.length);
      return { page: h.pageCount + 1, offset: base.bytes.length, what: `${n} ${tail.some((x) => x !== 0) ? "random" : "zero"} bytes appended after ${h.pageCount} pages`, bytes: out };
    }
    case "byte.random": {
      const at = r.int(0, base.bytes.length - 1);
      const old = m.out[at] ?? 0;
      let v = old;
      // Header bytes 18/19 = 2 would be WAL mode (valid, but the CLI cannot open it read-only).
      while (v === old || ((at === 18 || at === 19) && v === 2)) v = r.int(0, 255);
      const pg = m.pageOf(at);
      return { ...m.set(at, 1, v, `byte ${at} (${hex(at)}) in page ${pg} (${p.pages.get(pg)?.role ?? "?"})`) };
    }
  }
}

export interface Corpus {
  seed: number;
  bases: Base[];
  cases: CorpusCase[];
}

/** Every base, unmutated once and mutated VARIANTS times by every kind that applies to it. */
export async function buildCorpus(seed = DEFAULT_SEED): Promise<Corpus> {
  const bases = await makeBases(seed);
  const cases: CorpusCase[] = [];
  for (const base of bases) {
    for (const kind of KINDS) {
      const variants = VARIANTS[kind] ?? DEFAULT_VARIANTS;
      for (let v = 0; v < variants; v++) {
        const id = `${base.name}/${kind}#${v}`;
        const r = new Rng(seedOf(seed, id));
        let mut: Mutation | undefined;
        // A draw that changes nothing (a chosen value equal to the old one) is drawn again.
        for (let attempt = 0; attempt < 20; attempt++) {
          mut = mutate(kind, base, r);
          if (!mut || kind === "none" || !sameBytes(mut.bytes, base.bytes)) break;
          mut = undefined;
        }
        if (!mut) continue;
        const c: CorpusCase = { index: cases.length, id, base: base.name, kind, what: mut.what, bytes: mut.bytes };
        if (mut.page !== undefined) c.page = mut.page;
        if (mut.offset !== undefined) c.offset = mut.offset;
        cases.push(c);
      }
    }
  }
  return { seed, bases, cases };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- SQLite's verdicts ----------------------------------------------------------------------

export interface Verdict {
  ok: boolean;
  /** quick_check's rows, or the error. */
  messages: string[];
}

const MARK = "@@structure-corpus@@";

/**
 * Run sqlite3 with `script` on stdin; its stderr. Through `sh` so that stderr is a real pipe
 * (Node's stdio pipes are sockets, which `.output /dev/stderr` cannot open).
 */
function sqliteStderr(script: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("sh", ["-c", "sqlite3 -batch 2>&1 >/dev/null | cat"], { stdio: ["pipe", "pipe", "inherit"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => chunks.push(d));
    child.on("error", reject);
    child.on("close", () => resolvePromise(Buffer.concat(chunks).toString("utf8")));
    child.stdin.on("error", () => undefined);
    child.stdin.end(script);
  });
}

/**
 * `PRAGMA quick_check` by the sqlite3 CLI, read-only, many files per process. Results and error
 * messages both go to stderr (`.output /dev/stderr`, flushed by switching back), between markers,
 * so an error is attributed to its file.
 */
export async function cliQuickCheck(paths: string[], batch = 150, parallel = 2): Promise<Verdict[]> {
  const out: Verdict[] = new Array<Verdict>(paths.length);
  const batches: number[][] = [];
  for (let i = 0; i < paths.length; i += batch) batches.push(Array.from({ length: Math.min(batch, paths.length - i) }, (_, j) => i + j));
  const run = async (idx: number[]) => {
    const script = idx
      .map((i) => [".output /dev/stderr", `.print ${MARK} ${i}`, ".output stdout", `.open --readonly "${paths[i]}"`, ".output /dev/stderr", "PRAGMA quick_check;", ".output stdout"].join("\n"))
      .join("\n");
    const stderr = await sqliteStderr(`${script}\n`);
    let current = -1;
    const lines = new Map<number, string[]>();
    for (const line of stderr.split("\n")) {
      if (line.startsWith(`${MARK} `)) {
        current = Number(line.slice(MARK.length + 1));
        lines.set(current, []);
      } else if (current >= 0 && line !== "") lines.get(current)!.push(line.replace(/^(Parse error|Runtime error|Error)( near line \d+)?: /, ""));
    }
    for (const i of idx) {
      const messages = lines.get(i);
      if (!messages) throw new Error(`sqlite3 gave no output for ${paths[i]}: ${stderr.slice(0, 500)}`);
      out[i] = { ok: messages.length === 1 && messages[0] === "ok", messages };
    }
  };
  const queue = [...batches];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let b = queue.shift(); b; b = queue.shift()) await run(b);
    }),
  );
  return out;
}

export interface SqlJsVerdict extends Verdict {
  /** When ok: what sql.js says of the file. */
  meta?: { pageSize: number; pageCount: number; tables: number };
}

export async function sqljsQuickCheck(bytes: Uint8Array): Promise<SqlJsVerdict> {
  const SQL = await sqlJs();
  let db;
  try {
    db = new SQL.Database(bytes);
    const rows = db.exec("PRAGMA quick_check")[0]?.values.map((r) => String(r[0])) ?? [];
    const ok = rows.length === 1 && rows[0] === "ok";
    if (!ok) return { ok, messages: rows };
    const one = (sql: string) => Number(db!.exec(sql)[0]?.values[0]?.[0]);
    return { ok, messages: rows, meta: { pageSize: one("PRAGMA page_size"), pageCount: one("PRAGMA page_count"), tables: one("SELECT count(*) FROM sqlite_schema WHERE type = 'table'") } };
  } catch (err) {
    return { ok: false, messages: [String((err as Error).message ?? err)] };
  } finally {
    db?.close();
  }
}

// ---- ours, and the comparison ---------------------------------------------------------------

export interface Ours {
  findings: string[];
  /** Thrown instead of a report (a bug whatever the file). */
  error?: string;
  report?: StructureReport;
}

export function runOurs(bytes: Uint8Array): Ours {
  try {
    const report = checkStructureOf(bytes);
    return { findings: report.findings, report };
  } catch (err) {
    return { findings: [], error: String((err as Error).message ?? err) };
  }
}

export type Outcome = "agree-ok" | "false-positive" | "caught" | "miss";

export interface CaseResult {
  case: CorpusCase;
  cli: Verdict;
  sqljs: SqlJsVerdict;
  /** Both SQLites say exactly "ok". */
  sound: boolean;
  ours?: Ours;
  outcome?: Outcome;
  /** Sound, but ours reports other page size/page count/tables than sql.js. */
  metaMismatch?: string;
}

/** SQLite's verdicts for every case (the files go to a temp dir for the CLI). */
export async function sqliteVerdicts(cases: CorpusCase[]): Promise<CaseResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "structure-corpus-"));
  try {
    const paths = cases.map((c) => join(dir, `case-${c.index}.db`));
    cases.forEach((c, i) => writeFileSync(paths[i]!, c.bytes));
    // The CLI processes run while sql.js checks the same files on this thread.
    const cliPromise = cliQuickCheck(paths);
    const sqljs: SqlJsVerdict[] = [];
    for (const c of cases) sqljs.push(await sqljsQuickCheck(c.bytes));
    const cli = await cliPromise;
    return cases.map((c, i) => ({ case: c, cli: cli[i]!, sqljs: sqljs[i]!, sound: cli[i]!.ok && sqljs[i]!.ok }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Run ours on every case and classify it against SQLite's verdict. */
export function compare(results: CaseResult[]): CaseResult[] {
  for (const r of results) {
    const ours = runOurs(r.case.bytes);
    r.ours = ours;
    const oursOk = ours.error === undefined && ours.findings.length === 0;
    r.outcome = r.sound ? (oursOk ? "agree-ok" : "false-positive") : oursOk ? "miss" : "caught";
    const meta = r.sqljs.meta;
    if (r.sound && meta && ours.report) {
      const got = { pageSize: ours.report.pageSize, pageCount: ours.report.pageCount, tables: ours.report.tables };
      if (got.pageSize !== meta.pageSize || got.pageCount !== meta.pageCount || got.tables !== meta.tables) r.metaMismatch = `ours ${JSON.stringify(got)}, sql.js ${JSON.stringify(meta)}`;
    }
  }
  return results;
}

/** Is checkStructureOf implemented yet? (It throws "not implemented yet" while it is written.) */
export function checkerReady(): boolean {
  try {
    checkStructureOf(new Uint8Array(0));
    return true;
  } catch (err) {
    return !/not implemented/i.test(String((err as Error).message));
  }
}

// ---- the report -----------------------------------------------------------------------------

export interface Tally {
  files: number;
  sound: number;
  rejected: number;
  cliOnly: number;
  sqljsOnly: number;
  agreeOk: number;
  falsePositive: number;
  caught: number;
  miss: number;
  crashed: number;
}

export function tally(results: CaseResult[]): Map<string, Tally> {
  const out = new Map<string, Tally>();
  const add = (key: string, r: CaseResult) => {
    const t = out.get(key) ?? { files: 0, sound: 0, rejected: 0, cliOnly: 0, sqljsOnly: 0, agreeOk: 0, falsePositive: 0, caught: 0, miss: 0, crashed: 0 };
    t.files++;
    if (r.sound) t.sound++;
    else t.rejected++;
    if (!r.cli.ok && r.sqljs.ok) t.cliOnly++;
    if (r.cli.ok && !r.sqljs.ok) t.sqljsOnly++;
    if (r.outcome === "agree-ok") t.agreeOk++;
    if (r.outcome === "false-positive") t.falsePositive++;
    if (r.outcome === "caught") t.caught++;
    if (r.outcome === "miss") t.miss++;
    if (r.ours?.error !== undefined) t.crashed++;
    out.set(key, t);
  };
  for (const r of results) add(r.case.kind, r);
  for (const r of results) add("**all**", r);
  return out;
}

const pct = (a: number, b: number): string => (b === 0 ? "–" : `${((100 * a) / b).toFixed(1)} %`);
const short = (s: string, n = 160): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s).replace(/\n/g, " ⏎ ").replace(/\|/g, "\\|");

export function describeCase(c: CorpusCase, seed: number): string {
  return `#${c.index} \`${c.id}\` (seed ${seed}): ${c.what}${c.page !== undefined ? `; page ${c.page}` : ""}${c.offset !== undefined ? `, offset ${c.offset}` : ""}`;
}

/** The agreement table and every false positive and miss, as markdown. */
export function markdownReport(corpus: Corpus, results: CaseResult[], ms?: { sqlite: number; ours?: number }): string {
  const ready = results.some((r) => r.outcome !== undefined);
  const t = tally(results);
  const lines: string[] = [];
  lines.push(`## CHECK=structure against SQLite: ${results.length} files, seed ${corpus.seed}`);
  lines.push("");
  lines.push(`Bases: ${corpus.bases.length} (${SHAPES.length} shapes × sqlite3 CLI ${cliVersion()} and sql.js; ${corpus.bases.map((b) => `${b.name} ${b.bytes.length / b.parsed.header.pageSize}×${b.parsed.header.pageSize}`).join(", ")}).`);
  lines.push(`Verdict of record: \`PRAGMA quick_check\` = \`ok\` in both the sqlite3 CLI and sql.js.${ms ? ` SQLite took ${(ms.sqlite / 1000).toFixed(1)} s${ms.ours !== undefined ? `, ours ${(ms.ours / 1000).toFixed(1)} s` : ""}.` : ""}`);
  lines.push("");
  if (ready) {
    lines.push("| mutation | files | SQLite ok | SQLite rejects (CLI only / sql.js only) | sound & ours ok | **false positives** | damaged & ours rejects | **misses** | detection | ours threw |");
    lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const [k, x] of t) lines.push(`| ${k} | ${x.files} | ${x.sound} | ${x.rejected} (${x.cliOnly} / ${x.sqljsOnly}) | ${x.agreeOk} | ${x.falsePositive} | ${x.caught} | ${x.miss} | ${pct(x.caught, x.rejected)} | ${x.crashed} |`);
  } else {
    lines.push("checkStructureOf is not implemented yet: SQLite's verdicts only.");
    lines.push("");
    lines.push("| mutation | files | SQLite ok | SQLite rejects | CLI only rejects | sql.js only rejects |");
    lines.push("|---|---:|---:|---:|---:|---:|");
    for (const [k, x] of t) lines.push(`| ${k} | ${x.files} | ${x.sound} | ${x.rejected} | ${x.cliOnly} | ${x.sqljsOnly} |`);
  }
  const section = (title: string, rs: CaseResult[], show: (r: CaseResult) => string) => {
    lines.push("", `### ${title}: ${rs.length}`, "");
    for (const r of rs) lines.push(`- ${describeCase(r.case, corpus.seed)} — ${show(r)}`);
  };
  const sqliteSays = (r: CaseResult) => `CLI: ${short(r.cli.messages.join(" / "))}; sql.js: ${short(r.sqljs.messages.join(" / "))}`;
  if (ready) {
    section("False positives (SQLite: ok; ours rejects)", results.filter((r) => r.outcome === "false-positive"), (r) => `ours: ${short(r.ours?.error ? `threw ${r.ours.error}` : r.ours!.findings.slice(0, 3).join(" / "), 300)}`);
    section("Misses (SQLite rejects; ours: no finding)", results.filter((r) => r.outcome === "miss"), (r) => sqliteSays(r));
    const crashed = results.filter((r) => r.ours?.error !== undefined && r.outcome !== "false-positive");
    if (crashed.length > 0) section("Ours threw (counted as rejecting)", crashed, (r) => `threw ${short(r.ours!.error!)}; ${sqliteSays(r)}`);
    const meta = results.filter((r) => r.metaMismatch);
    if (meta.length > 0) section("Sound, but page size / page count / tables differ from sql.js", meta, (r) => r.metaMismatch!);
  }
  // Where the CLI (3.40) and sql.js (newer) disagree: grouped, one example each.
  const split = results.filter((r) => r.cli.ok !== r.sqljs.ok);
  const groups = new Map<string, CaseResult[]>();
  for (const r of split) {
    const key = `${r.case.kind}: CLI ${r.cli.ok ? "ok" : "rejects"}; sql.js: ${(r.sqljs.ok ? "ok" : (r.sqljs.messages.find((m) => !m.startsWith("***")) ?? "")).replace(/\d+/g, "N")}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  lines.push("", `### The two SQLites disagree (counted as damaged): ${split.length}`, "");
  for (const [key, rs] of groups) lines.push(`- ${rs.length} × ${short(key, 200)} — e.g. ${describeCase(rs[0]!.case, corpus.seed)}`);
  return lines.join("\n");
}

let cliVersionCache: string | undefined;
export function cliVersion(): string {
  return (cliVersionCache ??= execFileSync("sqlite3", ["-version"], { encoding: "utf8" }).split(" ")[0] ?? "?");
}

/** The whole run: corpus, SQLite's verdicts, ours (when implemented). */
export async function runCorpus(seed = DEFAULT_SEED): Promise<{ corpus: Corpus; results: CaseResult[]; ms: { sqlite: number; ours?: number }; ready: boolean }> {
  const corpus = await buildCorpus(seed);
  let t = performance.now();
  const results = await sqliteVerdicts(corpus.cases);
  const ms: { sqlite: number; ours?: number } = { sqlite: performance.now() - t };
  const ready = checkerReady();
  if (ready) {
    t = performance.now();
    compare(results);
    ms.ours = performance.now() - t;
  }
  return { corpus, results, ms, ready };
}

// ---- CLI --------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const seed = Number(arg("--seed") ?? DEFAULT_SEED);
  const one = arg("--case");
  const writeDir = arg("--write");
  if (one !== undefined || writeDir !== undefined) {
    const corpus = await buildCorpus(seed);
    const chosen = one !== undefined ? corpus.cases.filter((c) => c.index === Number(one) || c.id === one) : corpus.cases;
    if (chosen.length === 0) throw new Error(`no case ${one} (0…${corpus.cases.length - 1})`);
    const results = await sqliteVerdicts(chosen);
    if (checkerReady()) compare(results);
    if (writeDir) mkdirSync(resolve(writeDir), { recursive: true });
    for (const r of results) {
      const file = one !== undefined && arg("--out") ? resolve(arg("--out")!) : writeDir ? join(resolve(writeDir), `case-${r.case.index}.db`) : undefined;
      if (file) writeFileSync(file, r.case.bytes);
      if (one !== undefined) {
        console.log(describeCase(r.case, seed));
        const indent = (lines: string[]) => lines.join("\n").split("\n").join("\n               ");
        console.log(`  sqlite3 CLI: ${indent(r.cli.messages)}`);
        console.log(`  sql.js:      ${indent(r.sqljs.messages)}`);
        console.log(`  ours:        ${r.ours ? (r.ours.error ? `threw ${r.ours.error}` : r.ours.findings.length === 0 ? "ok" : indent(r.ours.findings)) : "(not implemented yet)"}`);
        if (file) console.log(`  written to ${file}`);
      }
    }
    if (writeDir) {
      const index = results.map((r) => ({ index: r.case.index, id: r.case.id, what: r.case.what, page: r.case.page, offset: r.case.offset, sound: r.sound, cli: r.cli.messages, sqljs: r.sqljs.messages, ours: r.ours?.findings, outcome: r.outcome }));
      writeFileSync(join(resolve(writeDir), "index.json"), `${JSON.stringify({ seed, cases: index }, null, 1)}\n`);
      console.log(`wrote ${results.length} files and index.json to ${resolve(writeDir)}`);
    }
    return;
  }
  const { corpus, results, ms } = await runCorpus(seed);
  console.log(markdownReport(corpus, results, ms));
}

const invokedDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
