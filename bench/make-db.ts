/**
 * Realistic benchmark databases, made by the `sqlite3` CLI (sql.js cannot make 1 GiB: it
 * holds the database in memory and exports a full copy) and cached in bench/cache/ between
 * runs as bench-<MiB>mib.db.
 *
 * Shape (page_size 4096, rollback journal, no free pages):
 * - accounts: 100 per MiB (at least 1000) — INTEGER, TEXT, REAL and a JSON profile;
 * - events: ~90 per file — INTEGER, REAL, a kind, a ~210-byte JSON body with a hex session id;
 *   indexed on (account, at) and (kind, at);
 * - files: 4–28 KiB blobs (overflow pages), even ids random bytes (like images or archives),
 *   odd ids text documents cut from 4 of 64 word-salad chunks (gzip gets ~3:1 on them);
 *   indexed on (account, name).
 * By bytes (dbstat, 64 MiB): 38 % files, 52 % events, 7 % their indexes, 2 % accounts, plus
 * ~0.5 MiB of text chunks; gzip -1 / -6 make the file ~41 % / ~37 % of its size.
 *
 * The "photos" shape (bench-photos-<MiB>mib.db) is an app that keeps images in the database:
 * the same tables, but every file is 32–288 KiB of random bytes (as a JPEG looks to deflate),
 * so most of the file cannot be compressed.
 *
 * Every value except the random blobs' bytes is a function of the row id (integer hashes), so
 * the size and shape are the same on every machine with the same SQLite; only randomblob()
 * content differs, and random bytes compress the same everywhere. The size lands within ~2 %
 * above the request: most rows in one pass, then top-ups measured against the file until it
 * reaches the requested bytes. The file is built under a temporary name and renamed when
 * complete; PRAGMA user_version marks the generator version, and a cached file with another
 * version is rebuilt.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const MiB = 1024 * 1024;
/** Bump when the generated content changes: cached files of other versions are rebuilt. */
const GENERATOR_VERSION = 2;
const EVENTS_PER_FILE = 90;
const CHUNKS = 64;
/** Bytes per unit (one file + its events, with index entries) measured on SQLite 3.40, for the first pass only. */
const UNIT_BYTES_GUESS: Record<Shape, number> = { mixed: 43_000, photos: 190_000 };

export const CACHE_DIR = new URL("./cache/", import.meta.url).pathname;

export type Shape = "mixed" | "photos";
export const SHAPES: readonly Shape[] = ["mixed", "photos"];

/** The path of a cached database of about `mib` MiB, generating it first if needed. */
export async function benchDatabase(mib: number, shape: Shape = "mixed"): Promise<string> {
  if (!(mib > 0)) throw new Error(`benchDatabase: size must be a positive number of MiB, got ${mib}`);
  const path = `${CACHE_DIR}bench-${shape === "mixed" ? "" : `${shape}-`}${mib}mib.db`;
  if (existsSync(path) && (await userVersion(path)) === GENERATOR_VERSION) return path;
  await mkdir(CACHE_DIR, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await generate(tmp, Math.round(mib * MiB), shape);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
  return path;
}

async function userVersion(path: string): Promise<number> {
  const fh = await open(path, "r");
  try {
    const header = Buffer.alloc(100);
    const { bytesRead } = await fh.read(header, 0, 100, 0);
    if (bytesRead < 100 || header.toString("latin1", 0, 16) !== "SQLite format 3\0") return -1;
    return header.readUInt32BE(60);
  } finally {
    await fh.close();
  }
}

/** Run an SQL script with the sqlite3 CLI on `path`, stopping at the first error. */
function sqlite(path: string, sql: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("sqlite3", ["-bail", path], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (err) =>
      reject(new Error(`cannot run sqlite3 (install the sqlite3 CLI, e.g. apt-get install sqlite3): ${err.message}`)),
    );
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`sqlite3 exited with ${code}: ${stderr.trim()}`))));
    child.stdin.end(sql);
  });
}

// Three independent-looking 32-bit hashes h1, h2, h3 of the row id x (multiply, xor-shift,
// multiply, xor-shift; SQL has no xor: p ^ q = (p | q) - (p & q)), as CTEs over s(x). The
// second multipliers stay under 2^31 so that no product leaves 64-bit integers (SQLite would
// turn it into a REAL).
const M32 = 4294967296;
const xor = (p: string, q: string) => `((${p} | ${q}) - (${p} & ${q}))`;
const HASHED = `r0 AS (SELECT x, (x * 2654435761 + 1013904223) % ${M32} AS a1, (x * 2246822519 + 374761393) % ${M32} AS a2,
    (x * 3266489917 + 668265263) % ${M32} AS a3 FROM s),
  r1 AS (SELECT x, ${xor("a1", "(a1 >> 16)")} * 73244475 % ${M32} AS b1, ${xor("a2", "(a2 >> 16)")} * 739982445 % ${M32} AS b2,
    ${xor("a3", "(a3 >> 16)")} * 695872825 % ${M32} AS b3 FROM r0),
  r AS (SELECT x, ${xor("b1", "(b1 >> 13)")} AS h1, ${xor("b2", "(b2 >> 13)")} AS h2, ${xor("b3", "(b3 >> 13)")} AS h3 FROM r1)`;

const WORDS =
  "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est laborum invoice customer shipment order".split(
    " ",
  );

function schemaAndAccounts(accounts: number): string {
  const words = WORDS.map((w, i) => `(${i}, '${w}')`).join(",");
  return `
PRAGMA page_size = 4096;
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, plan TEXT NOT NULL, balance REAL, created INTEGER NOT NULL, profile TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, account INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT, amount REAL, at INTEGER NOT NULL);
CREATE TABLE files (id INTEGER PRIMARY KEY, account INTEGER NOT NULL, name TEXT NOT NULL, mime TEXT, size INTEGER, created INTEGER, data BLOB);
-- Text for the documents: ${CHUNKS} chunks of ~8 KiB of words picked by a hash (kept in the
-- file, like a small lookup table, so that top-ups can use it).
CREATE TABLE words (i INTEGER PRIMARY KEY, w TEXT NOT NULL);
INSERT INTO words VALUES ${words};
CREATE TABLE chunks (k INTEGER PRIMARY KEY, t TEXT NOT NULL);
WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < ${CHUNKS} * 1200 - 1),
  ${HASHED}
INSERT INTO chunks
SELECT x / 1200, group_concat(w || CASE WHEN h2 % 17 = 0 THEN char(10) ELSE ' ' END, '')
FROM (SELECT x, w, h2 FROM r JOIN words ON words.i = h1 % ${WORDS.length} ORDER BY x)
GROUP BY x / 1200;
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < ${accounts}),
${HASHED}
INSERT INTO accounts
SELECT x,
  printf('user%d@%s', x, CASE h1 % 4 WHEN 0 THEN 'example.com' WHEN 1 THEN 'mail.example.org' WHEN 2 THEN 'corp.example.net' ELSE 'example.co.uk' END),
  CASE h2 % 10 WHEN 0 THEN 'enterprise' WHEN 1 THEN 'pro' WHEN 2 THEN 'pro' ELSE 'free' END,
  (h3 % 10000000) / 100.0,
  1600000000 + x * 37,
  json_object('name', printf('User %d', x), 'locale', CASE h3 % 3 WHEN 0 THEN 'en-GB' WHEN 1 THEN 'fr-FR' ELSE 'de-DE' END,
    'tz', CASE h1 % 3 WHEN 0 THEN 'Europe/Paris' WHEN 1 THEN 'America/New_York' ELSE 'Asia/Tokyo' END,
    'prefs', json_object('theme', CASE h2 % 2 WHEN 0 THEN 'dark' ELSE 'light' END, 'digest', json(CASE h3 % 2 WHEN 0 THEN 'true' ELSE 'false' END)),
    'tags', json_array('t' || (h1 % 50), 't' || (h2 % 50)), 'api', printf('%08x%08x', h2, h3))
FROM r;
`;
}

/** Units [from, to]: file ids from..to and their events (EVENTS_PER_FILE per file). */
function units(from: number, to: number, accounts: number, shape: Shape): string {
  const photos = shape === "photos";
  const e0 = (from - 1) * EVENTS_PER_FILE + 1;
  const e1 = to * EVENTS_PER_FILE;
  return `
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
BEGIN;
WITH RECURSIVE s(x) AS (SELECT ${e0} UNION ALL SELECT x + 1 FROM s WHERE x < ${e1}),
${HASHED}
INSERT INTO events (id, account, kind, body, amount, at)
SELECT x, 1 + h1 % ${accounts},
  CASE h2 % 10 WHEN 0 THEN 'purchase' WHEN 1 THEN 'refund' WHEN 2 THEN 'search' WHEN 3 THEN 'login' ELSE 'view' END,
  json_object('n', x, 'path', '/items/' || (h3 % 5000), 'q', substr('lorem ipsum dolor sit amet consectetur adipiscing elit', 1, h1 % 52),
    'price', (h2 % 100000) / 100.0, 'qty', 1 + h3 % 5,
    'ua', CASE h3 % 4 WHEN 0 THEN 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
      WHEN 1 THEN 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15'
      WHEN 2 THEN 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0' ELSE 'curl/8.5.0' END,
    'ref', CASE WHEN h1 % 3 = 0 THEN 'https://example.com/ref/' || (h2 % 997) END,
    'session', printf('%08x%08x', h1, h3), 'ok', json(CASE WHEN h2 % 7 = 0 THEN 'false' ELSE 'true' END)),
  (h3 % 1000000) / 100.0,
  1700000000 + x * 13 + h1 % 13
FROM r;
WITH RECURSIVE s(x) AS (SELECT ${from} UNION ALL SELECT x + 1 FROM s WHERE x < ${to}),
${HASHED},
  rl AS (SELECT *, ${photos ? "32768 + h2 % 262145" : "4096 + h2 % 24577"} AS len FROM r)
INSERT INTO files (id, account, name, mime, size, created, data)
SELECT x, 1 + h1 % ${accounts},
  printf('%s-%d.%s', CASE x % 2 WHEN 0 THEN 'photo' ELSE 'report' END, x, CASE x % 2 WHEN 0 THEN 'jpg' ELSE 'txt' END),
  CASE x % 2 WHEN 0 THEN 'image/jpeg' ELSE 'text/plain' END,
  len,
  1700000000 + x * 1170,
  CASE ${photos ? "0" : "x % 2"} WHEN 0 THEN randomblob(len)
  ELSE CAST(substr(printf('Report %d for account %d%s', x, 1 + h1 % ${accounts}, char(10))
    || (SELECT t FROM chunks WHERE k = h1 % ${CHUNKS}) || (SELECT t FROM chunks WHERE k = h2 % ${CHUNKS})
    || (SELECT t FROM chunks WHERE k = h3 % ${CHUNKS}) || (SELECT t FROM chunks WHERE k = (h1 >> 16) % ${CHUNKS}), 1, len) AS BLOB) END
FROM rl;
COMMIT;
`;
}

const INDEXES = `
CREATE INDEX events_account_at ON events(account, at);
CREATE INDEX events_kind_at ON events(kind, at);
CREATE INDEX files_account_name ON files(account, name);
`;

async function generate(path: string, target: number, shape: Shape): Promise<void> {
  await rm(path, { force: true });
  const accounts = Math.max(1000, Math.round((target / MiB) * 100));
  const started = performance.now();
  // Pass 1: ~90 % of the target in one go, indexes built afterwards (fast, like a bulk load).
  // Fixed part: the chunks (~0.5 MiB) and the accounts (~2 % of the target).
  const first = Math.max(1, Math.floor(((target * 0.98 - 0.55 * MiB) * 0.9) / UNIT_BYTES_GUESS[shape]));
  await sqlite(path, schemaAndAccounts(accounts) + units(1, first, accounts, shape) + INDEXES);
  let done = first;
  let size = (await stat(path)).size;
  let perUnit = size / first;
  // Top-ups, each aiming at the remaining bytes with the cost per unit measured last time
  // (rows appended with live indexes cost a little more than the bulk load).
  for (let round = 0; size < target; round++) {
    if (round === 20) throw new Error(`benchDatabase: ${size} bytes after 20 top-ups, target ${target}`);
    const add = Math.max(1, Math.ceil((target - size) / perUnit));
    await sqlite(path, units(done + 1, done + add, accounts, shape));
    const next = (await stat(path)).size;
    if (next > size) perUnit = (next - size) / add;
    done += add;
    size = next;
  }
  await sqlite(path, `PRAGMA user_version = ${GENERATOR_VERSION};`);
  process.stderr.write(
    `bench: made ${path.replace(/\.tmp-\d+$/, "")}: ${(size / MiB).toFixed(1)} MiB (${done} files, ${done * EVENTS_PER_FILE} events) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  // `npx tsx bench/make-db.ts [MiB ...]`: make (or find) the cached databases and print their paths.
  const shape = (process.env.BENCH_SHAPE ?? "mixed") as Shape;
  for (const arg of process.argv.slice(2)) console.log(await benchDatabase(Number(arg), shape));
}
