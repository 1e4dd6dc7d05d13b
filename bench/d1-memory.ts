/**
 * `node --expose-gc --import tsx bench/d1-memory.ts [MiB ...]`: what a d1:// source holds
 * while it builds an image. For each size a database of mixed rows (text, JSON, blobs) is
 * dumped by the sqlite3 CLI into D1's export shape, served by the local export API of
 * test/helpers/d1-api.ts, and read by d1Source. Printed per size: the dump and image sizes,
 * the process's peak RSS above its baseline (VmHWM, everything the process touched), the
 * peak of V8's own accounting (heap used + ArrayBuffers, sampled between awaits), and sql.js's
 * WebAssembly memory afterwards. Not a test; docs/d1.md quotes the figures.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import initSqlJs from "sql.js";
import { d1Source } from "../src/sources/d1.js";
import { startFakeD1Api } from "../test/helpers/d1-api.js";

const MiB = 1024 * 1024;
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);

function hwm(): number {
  const status = execFileSync("cat", [`/proc/${process.pid}/status`], { encoding: "utf8" });
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]) * 1024;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "seb-d1-mem-"));
  const SQL = await initSqlJs();
  console.log("| dump MiB | image MiB | peak RSS above baseline MiB | peak heap+ArrayBuffers MiB | wasm MiB | s |");
  console.log("|---|---|---|---|---|---|");
  for (const mib of sizes.length ? sizes : [8, 16, 32]) {
    const db = join(dir, `m${mib}.db`);
    // Rows of text and JSON, a third of the bytes in blobs: about `mib` MiB of image.
    const rows = Math.round((mib * MiB) / 420);
    execFileSync("sqlite3", [db, `CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, payload TEXT, data BLOB); CREATE INDEX t_name ON t(name);
      INSERT INTO t (name, payload, data) SELECT 'user ' || i, json_object('i', i, 'tags', json_array('a', 'b', hex(randomblob(60)))), randomblob(200) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows}) SELECT i FROM n);`]);
    // Written by the shell, read as bytes: no large string in this process before the baseline.
    const file = join(dir, `m${mib}.sql`);
    execFileSync("sh", ["-c", `(echo 'PRAGMA defer_foreign_keys=TRUE;'; sqlite3 '${db}' .dump | grep -v -e '^PRAGMA foreign_keys=OFF;$' -e '^BEGIN TRANSACTION;$' -e '^COMMIT;$') > '${file}'`]);
    const bytes = new Uint8Array(await readFile(file));
    const api = await startFakeD1Api(bytes);
    api.set({ activePolls: 0 });
    (globalThis as { gc?: () => void }).gc?.();
    const base = process.memoryUsage();
    const baseRss = hwm();
    let peak = 0;
    const sample = () => {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers);
    };
    const timer = setInterval(sample, 5);
    const started = Date.now();
    const source = d1Source((i, init) => fetch(i, init), SQL, { accountId: api.accountId, databaseId: api.databaseId, token: api.token, apiBase: api.base, maxDumpBytes: 4096 * MiB });
    const image = await source.read({ maxBytes: 4096 * MiB });
    sample();
    clearInterval(timer);
    const seconds = (Date.now() - started) / 1000;
    const wasm = (SQL as unknown as { HEAP8?: Int8Array }).HEAP8?.buffer.byteLength ?? 0;
    console.log(`| ${(bytes.length / MiB).toFixed(1)} | ${(image.bytes.length / MiB).toFixed(1)} | ${((hwm() - baseRss) / MiB).toFixed(0)} | ${(peak / MiB).toFixed(0)} | ${(wasm / MiB).toFixed(0)} | ${seconds.toFixed(1)} |`);
    await api.close();
  }
  await rm(dir, { recursive: true, force: true });
}

await main();
