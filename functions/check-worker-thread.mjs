// The body of the check worker (functions/check-worker.ts): run read-only queries with its own
// sql.js on an image in shared memory, in place, and post the answers back. Plain JavaScript
// so that a worker thread can load it however the parent runs TypeScript (tsx, vitest).
import { parentPort, workerData } from "node:worker_threads";
import initSqlJs from "sql.js";

// As src/sqlite/check.ts: sql.js copies the bytes it is given with `slice`; a view reads the
// shared image in place. SQLite only reads here.
class SharedBytes extends Uint8Array {
  slice(start, end) {
    return this.subarray(start, end);
  }
}

const { buffer, byteOffset, byteLength, setup, queries } = workerData;
try {
  const sqlite = await initSqlJs();
  const db = new sqlite.Database(new SharedBytes(buffer, byteOffset, byteLength));
  try {
    db.exec(setup);
    const answers = queries.map((sql) => (db.exec(sql)[0]?.values ?? []).map((row) => row[0]));
    parentPort.postMessage({ answers });
  } finally {
    db.close();
  }
} catch (err) {
  parentPort.postMessage({ error: err instanceof Error ? err.message : String(err) });
}
