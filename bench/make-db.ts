/**
 * Realistic benchmark databases (integers, text, JSON, compressible and random blobs,
 * indexes), made by SQLite (sql.js) and cached in bench/cache/ between runs.
 */
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import initSqlJs from "sql.js";

export async function benchDatabase(mib: number): Promise<string> {
  const path = new URL(`./cache/bench-${mib}mib.db`, import.meta.url).pathname;
  if (existsSync(path)) return path;
  await mkdir(new URL("./cache/", import.meta.url).pathname, { recursive: true });
  const SQL = await initSqlJs();
  const db = new SQL.Database();
  db.run(`PRAGMA page_size = 4096;
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT, plan TEXT, created INTEGER);
    CREATE TABLE events (id INTEGER PRIMARY KEY, account INTEGER, kind TEXT, body TEXT, at INTEGER);
    CREATE INDEX events_account_at ON events(account, at);
    CREATE INDEX events_kind ON events(kind);
    CREATE TABLE files (id INTEGER PRIMARY KEY, account INTEGER, name TEXT, data BLOB);`);
  let seed = 42;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const kinds = ["login", "purchase", "refund", "view", "search"];
  db.run("BEGIN");
  const acc = db.prepare("INSERT INTO accounts VALUES (?, ?, ?, ?)");
  for (let i = 1; i <= 10_000; i++) acc.run([i, `user${i}@example.com`, kinds[i % 3] ?? "free", 1_600_000_000 + i * 37]);
  acc.free();
  const ev = db.prepare("INSERT INTO events (account, kind, body, at) VALUES (?, ?, ?, ?)");
  const file = db.prepare("INSERT INTO files (account, name, data) VALUES (?, ?, ?)");
  const target = mib * 1024 * 1024;
  let approx = 0;
  let n = 0;
  while (approx < target) {
    const body = JSON.stringify({ n, path: `/items/${Math.floor(rand() * 5000)}`, q: "lorem ipsum dolor sit amet".slice(0, Math.floor(rand() * 26)), price: Math.round(rand() * 10_000) / 100 });
    ev.run([1 + Math.floor(rand() * 10_000), kinds[Math.floor(rand() * kinds.length)] ?? "view", body, 1_700_000_000 + n]);
    approx += body.length + 40;
    if (n % 40 === 0) {
      // Half random (incompressible, like images), half repetitive (like text documents).
      const blob = new Uint8Array(16 * 1024);
      for (let i = 0; i < blob.length; i++) blob[i] = i < blob.length / 2 ? Math.floor(rand() * 256) : i % 61;
      file.run([1 + Math.floor(rand() * 10_000), `f${n}.bin`, blob]);
      approx += blob.length;
    }
    n++;
  }
  ev.free();
  file.free();
  db.run("COMMIT");
  await writeFile(path, db.export());
  db.close();
  return path;
}
