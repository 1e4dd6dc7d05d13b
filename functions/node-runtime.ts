/**
 * Node implementations of what the core needs: sql.js from its .wasm file, node:zlib gzip
 * (with levels, on every core: parallel-gzip.ts), OpenSSL sha256, the file system, the
 * integrity check on a worker thread (check-worker.ts), and JSON logs on stderr.
 */
import { createHash, randomInt } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { createGunzip } from "node:zlib";
import type { FileAccess } from "../src/sources/file.js";
import { jsonLogger, type Logger } from "../src/log.js";
import { checkOnWorkerThread } from "./check-worker.js";
import { duplexToWeb } from "./duplex-to-web.js";
import { parallelGzip } from "./parallel-gzip.js";
import type { Runtime } from "../src/runtime.js";

// The SDK warns on every start that its 2027 releases will need Node 22; this project pins
// its SDK version, and a plain-text line would break the JSON-lines log on stderr.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

/** MAX_BYTES's default on Node: streamed backups hold no image, so this is only a sanity bound (1 TiB). */
export const NODE_MAX_BYTES = 2 ** 40;

export const nodeFiles: FileAccess = {
  stat: (path) => stat(path),
  open: (path, flags) => open(path, flags),
  // Shared memory, so that a worker thread can check the image in place (check-worker.ts).
  allocate: (bytes) => new Uint8Array(new SharedArrayBuffer(bytes)),
};

/**
 * CHECK=auto on Node: quick_check holds the image in memory (about 1.1–1.3× its size in the
 * process, measured); above this the backup streams with the structural check instead, so
 * the process grows by tens of MiB at any size.
 */
export const NODE_QUICK_CHECK_MAX_BYTES = 64 * 1024 * 1024;

/**
 * d1:// sources on Node: the largest D1 export (SQL) loaded into sql.js. The image is built
 * in memory, about 20 MiB + 1.8x the image at the peak (bench/d1-memory.ts; docs/d1.md): a
 * 1 GiB dump (at most ~1 GiB of image) needs about 2 GiB. D1 databases go up to 10 GB, but
 * not through an in-memory copy.
 */
export const NODE_D1_DUMP_MAX_BYTES = 1024 * 1024 * 1024;

export function stderrLogger(secrets: readonly string[] = [], level = process.env.LOG_LEVEL): Logger {
  return jsonLogger({
    write: (line) => process.stderr.write(`${line}\n`),
    secrets,
    level: level === "debug" || level === "warn" || level === "error" ? level : "info",
  });
}

export async function createNodeRuntime(logger: Logger): Promise<Runtime> {
  // Loaded here, not at import: commands that open no database (list, link, --help) start faster.
  // sql.js finds its .wasm beside its own file (node_modules/sql.js/dist/sql-wasm.wasm).
  const { default: initSqlJs } = await import("sql.js");
  const sqlite = await initSqlJs();
  return {
    sqlite,
    gzip: (level) => parallelGzip(level),
    gunzip: () => duplexToWeb(createGunzip()),
    sha256: () => {
      const h = createHash("sha256");
      return {
        update: (data) => void h.update(data),
        digest: async () => h.digest("hex"),
      };
    },
    now: () => new Date(),
    random: () => randomInt(0, 2 ** 47) / 2 ** 47,
    logger,
    checkInBackground: checkOnWorkerThread,
    quickCheckMaxBytes: NODE_QUICK_CHECK_MAX_BYTES,
  };
}
