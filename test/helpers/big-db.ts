/**
 * A large, deterministic SQLite database made by the sqlite3 CLI, for the long suite: the same
 * bytes on every run with the same CLI (no randomblob: the "random" bytes come from a seeded
 * PRNG, sent once as blob literals into a pool table that the bulk inserts slice).
 *
 * Varied content, so that the pipeline meets every kind of page: a rowid table whose blobs are
 * incompressible, hex text (compresses ~2:1) or zeros, most longer than a page (overflow
 * chains); NULLs, reals, text; a WITHOUT ROWID table of small rows; four indexes; a freelist
 * (rows deleted at the end, without VACUUM).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { mulberry32 } from "./random.js";

const MiB = 1024 * 1024;
const POOL_ROWS = 64;
const POOL_BYTES = 64 * 1024;

/** Rows of `items` for about `mib` MiB (measured with sqlite3 3.40: ~11.4 KiB per row with the rest). */
export function itemRowsFor(mib: number): number {
  return Math.round((mib * MiB) / 11_700);
}

function script(rows: number, seed: number): string[] {
  const next = mulberry32(seed);
  const parts: string[] = [
    `PRAGMA page_size = 4096; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
CREATE TABLE pool (i INTEGER PRIMARY KEY, b BLOB NOT NULL);
BEGIN;
`,
  ];
  for (let i = 0; i < POOL_ROWS; i++) {
    const bytes = Buffer.alloc(POOL_BYTES);
    for (let at = 0; at < POOL_BYTES; at += 4) bytes.writeUInt32LE(Math.floor(next() * 2 ** 32), at);
    parts.push(`INSERT INTO pool VALUES (${i}, X'${bytes.toString("hex")}');\n`);
  }
  parts.push(`COMMIT;
CREATE TABLE items (id INTEGER PRIMARY KEY, k TEXT NOT NULL, n REAL, tag TEXT, data BLOB);
CREATE TABLE events (day INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, amount REAL, note TEXT, PRIMARY KEY (day, seq)) WITHOUT ROWID;
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows})
INSERT INTO items
SELECT x,
       printf('%08x', (x * 2654435761) % 4294967296),
       CASE WHEN x % 7 = 0 THEN NULL ELSE x * 0.25 - 1000 END,
       CASE WHEN x % 5 = 0 THEN NULL ELSE printf('tag-%d', x % 97) END,
       CASE x % 4
         WHEN 0 THEN substr((SELECT b FROM pool WHERE i = x % ${POOL_ROWS}), 1 + (x * 131) % 32768, 200 + (x * 7919) % 30000)
         WHEN 1 THEN zeroblob(100 + (x * 7919) % 20000)
         WHEN 2 THEN CAST(hex(substr((SELECT b FROM pool WHERE i = (x * 3) % ${POOL_ROWS}), 1 + (x * 17) % 32768, 50 + (x * 104729) % 15000)) AS BLOB)
         ELSE CASE WHEN x % 8 = 3 THEN NULL ELSE CAST(printf('small %d', x) AS BLOB) END
       END
FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows * 10})
INSERT INTO events
SELECT x / 1000, x % 1000, CASE x % 3 WHEN 0 THEN 'in' WHEN 1 THEN 'out' ELSE 'adjust' END, (x * 37 % 10007) / 100.0,
       CASE WHEN x % 11 = 0 THEN printf('note for event %d: %.*c', x, x % 300, '*') END
FROM c;
CREATE INDEX items_k ON items (k);
CREATE INDEX items_tag ON items (tag, n);
CREATE INDEX events_kind ON events (kind, amount);
CREATE INDEX events_note ON events (note) WHERE note IS NOT NULL;
DELETE FROM items WHERE id % 50 = 7;
COMMIT;
PRAGMA journal_mode = DELETE;
`);
  return parts;
}

/** Make the database at `path` (which must not exist); returns its size in bytes. */
export async function makeBigDatabase(path: string, options: { mib: number; seed?: number }): Promise<number> {
  const rows = itemRowsFor(options.mib);
  const child = spawn("sqlite3", ["-batch", "-bail", path], { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  for (const part of script(rows, options.seed ?? 0x5eb)) {
    if (!child.stdin.write(part)) await new Promise((resolve) => child.stdin.once("drain", resolve));
  }
  child.stdin.end();
  const code = await exited;
  if (code !== 0) throw new Error(`sqlite3 could not make ${path} (exit ${code}): ${stderr}`);
  return (await stat(path)).size;
}

/** sha256 of a file, read as a stream. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** sha256 and length of `sqlite3 -readonly path .dump`, hashed as it is printed (never held). */
export async function dumpDigest(path: string): Promise<{ sha256: string; bytes: number }> {
  const child = spawn("sqlite3", ["-readonly", "-batch", path, ".dump"], { stdio: ["ignore", "pipe", "pipe"] });
  const hash = createHash("sha256");
  let bytes = 0;
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  for await (const chunk of child.stdout) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  const code = await exited;
  if (code !== 0 || stderr) throw new Error(`sqlite3 .dump of ${path} failed (exit ${code}): ${stderr}`);
  return { sha256: hash.digest("hex"), bytes };
}
