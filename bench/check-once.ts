/**
 * One check of a database file in this process, then its time and memory as one JSON line on
 * stdout. Run by bench/run.ts (its "Structural check" table), in a child process of its own so
 * that the RSS growth is the check's only.
 *
 * `check-once.ts structure FILE`: CHECK=structure's checker (src/sqlite/structure.ts) fed the
 * way a stream delivers the file: `fs.createReadStream` in 1 MiB chunks, each handed to
 * `StructureCheck.update`, then `finish()`. Reports `checkMs` (time inside update() and
 * finish() only), `totalMs` (from opening the stream to the verdict, reads included), the
 * report's `stateBytes`, `pageCount` and findings, and `idleRss` / `peakRss` (RSS before the
 * first read, and the highest RSS sampled after every chunk and after finish()).
 *
 * `check-once.ts sqljs FILE`: `PRAGMA quick_check` in sql.js on the whole file read into one
 * buffer, opened in place the way the backup pipeline opens it (src/sqlite/check.ts
 * openImage: sql.js reads the buffer, no copy into its WebAssembly memory). `checkMs` is the
 * pragma alone, `totalMs` adds the read and the open; the same RSS figures.
 */
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import initSqlJs from "sql.js";
import { openImage } from "../src/sqlite/check.js";
import { StructureCheck } from "../src/sqlite/structure.js";

const CHUNK = 1024 * 1024;
const [mode, file] = process.argv.slice(2);
if ((mode !== "structure" && mode !== "sqljs") || !file) {
  process.stderr.write("usage: check-once.ts structure|sqljs FILE\n");
  process.exit(2);
}

let peakRss = 0;
const sample = () => {
  const rss = process.memoryUsage().rss;
  if (rss > peakRss) peakRss = rss;
};

interface Report {
  mode: string;
  bytes: number;
  checkMs: number;
  totalMs: number;
  findings: string[];
  pageCount: number;
  stateBytes?: number;
  idleRss: number;
  peakRss: number;
}

async function structure(path: string): Promise<Report> {
  const idleRss = process.memoryUsage().rss;
  peakRss = idleRss;
  const check = new StructureCheck();
  let checkMs = 0;
  let bytes = 0;
  const t0 = performance.now();
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) {
    const c = chunk as Buffer;
    const t = performance.now();
    check.update(c);
    checkMs += performance.now() - t;
    bytes += c.length;
    sample();
  }
  const t = performance.now();
  const report = check.finish();
  const end = performance.now();
  checkMs += end - t;
  sample();
  return { mode: "structure", bytes, checkMs, totalMs: end - t0, findings: report.findings, pageCount: report.pageCount, stateBytes: report.stateBytes, idleRss, peakRss };
}

async function sqljs(path: string): Promise<Report> {
  const sqlite = await initSqlJs();
  const idleRss = process.memoryUsage().rss;
  peakRss = idleRss;
  const t0 = performance.now();
  const read = await readFile(path);
  const image = new Uint8Array(read.buffer, read.byteOffset, read.byteLength);
  sample();
  const db = openImage(sqlite, image);
  try {
    const t = performance.now();
    const rows = (db.exec("PRAGMA quick_check")[0]?.values ?? []).map((row) => String(row[0]));
    const end = performance.now();
    sample();
    const pageCount = Number(db.exec("PRAGMA page_count")[0]?.values[0]?.[0]);
    return {
      mode: "sqljs",
      bytes: image.byteLength,
      checkMs: end - t,
      totalMs: end - t0,
      findings: rows.length === 1 && rows[0] === "ok" ? [] : rows,
      pageCount,
      idleRss,
      peakRss,
    };
  } finally {
    db.close();
  }
}

const report = mode === "structure" ? await structure(file) : await sqljs(file);
process.stdout.write(JSON.stringify(report) + "\n");
