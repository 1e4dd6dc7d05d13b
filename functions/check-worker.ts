/**
 * The integrity check on a worker thread (Node), so that compressing and uploading the image
 * need not wait for it: the pipeline holds the end of the upload until the verdict (see
 * src/snapshot.ts). The worker reads the image in place from its SharedArrayBuffer (the file
 * source allocates it there: nodeFiles.allocate), so the cost is one more sql.js instance
 * (its WASM heap and page cache), not a copy of the database.
 */
import { Worker } from "node:worker_threads";
import { BackupError } from "../src/errors.js";
import { CHECK_CACHE_PRAGMA, checkQueries, checkVerdict, unreadableImage, type ImageInfo, type SqlCheckMode } from "../src/sqlite/check.js";

const WORKER_URL = new URL("./check-worker-thread.mjs", import.meta.url);

/** Undefined when the image is not in shared memory: then the caller checks it inline. */
export function checkOnWorkerThread(image: Uint8Array, check: SqlCheckMode, what: string): Promise<ImageInfo> | undefined {
  if (!(image.buffer instanceof SharedArrayBuffer)) return undefined;
  const worker = new Worker(WORKER_URL, {
    workerData: { buffer: image.buffer, byteOffset: image.byteOffset, byteLength: image.byteLength, setup: CHECK_CACHE_PRAGMA, queries: checkQueries(check) },
    // No tsx loader or other flags of the parent: the worker is plain JavaScript.
    execArgv: [],
    stdout: false,
    stderr: false,
  });
  const answers = new Promise<unknown[][]>((resolve, reject) => {
    worker.once("message", (m: { answers?: unknown[][]; error?: string }) => (m.answers ? resolve(m.answers) : reject(unreadableImage(what, m.error ?? "unknown error"))));
    // Not a verdict on the database: the thread itself failed (e.g. out of memory).
    worker.once("error", (err) => reject(new BackupError("INTERNAL", `checking ${what} failed on its worker thread: ${err.message}`, 500, { cause: err })));
    worker.once("exit", (code) => reject(new BackupError("INTERNAL", `checking ${what}: its worker thread exited (code ${code}) before answering`, 500)));
  });
  return answers.finally(() => void worker.terminate()).then((a) => checkVerdict(a, check, what));
}
