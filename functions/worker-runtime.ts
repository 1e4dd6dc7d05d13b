/**
 * Workers implementations of what the core needs: sql.js instantiated from the imported
 * (pre-compiled) .wasm module, CompressionStream gzip, DigestStream sha256, console logs.
 */
import initSqlJs from "sql.js/dist/sql-wasm-browser.js";
import sqlWasm from "sql.js/dist/sql-wasm-browser.wasm";
import { jsonLogger, type Logger } from "../src/log.js";
import type { ByteTransform, Runtime, Sha256 } from "../src/runtime.js";
import { pacedTransform } from "./paced-transform.js";

// workerd forbids compiling WASM from bytes at run time, so the module wrangler compiled at
// deploy time is instantiated directly. sql.js's Emscripten glue reads `location`.
let sqlite: ReturnType<typeof initSqlJs> | undefined;
let wasmMemory: WebAssembly.Memory | undefined;
function loadSqlite(): ReturnType<typeof initSqlJs> {
  (globalThis as { location?: unknown }).location ??= { href: "https://worker.invalid/", pathname: "/" };
  return (sqlite ??= initSqlJs({
    instantiateWasm(imports: WebAssembly.Imports, done: (instance: WebAssembly.Instance) => void) {
      WebAssembly.instantiate(sqlWasm, imports).then((instance) => {
        // Emscripten defines its memory in the module and exports it (under a minified name).
        wasmMemory = Object.values(instance.exports).find((e): e is WebAssembly.Memory => e instanceof WebAssembly.Memory);
        done(instance);
      });
      return {};
    },
  } as Parameters<typeof initSqlJs>[0]));
}

function digestSha256(): Sha256 {
  const stream = new crypto.DigestStream("SHA-256");
  const writer = stream.getWriter();
  let pending: Promise<void> = Promise.resolve();
  return {
    update(data) {
      pending = writer.write(data);
    },
    async digest() {
      await pending;
      await writer.close();
      const bytes = new Uint8Array(await stream.digest);
      return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    },
  };
}

export function consoleLogger(secrets: readonly string[]): Logger {
  // Workers Logs index JSON lines written with console.log.
  return jsonLogger({ write: (line, level) => (level === "error" ? console.error(line) : console.log(line)), secrets });
}

/**
 * CHECK=auto on Workers: quick_check needs the image in the isolate's 128 MB beside sql.js's
 * WebAssembly memory (which grows with it); above this the backup streams with the
 * structural check, whose memory does not depend on the database's size.
 */
export const WORKER_QUICK_CHECK_MAX_BYTES = 16 * 1024 * 1024;

/**
 * d1:// sources on Workers: the largest D1 export (SQL) loaded. The statements stream into
 * sql.js, but its database file and the exported image coexist in the isolate's 128 MB beside
 * sql.js's WebAssembly memory: bench/d1-memory.ts measured V8's heap + ArrayBuffers peaking at
 * about 20 MiB + 1.8x the image (34 MiB for an 8 MiB image, 66 for 24.5, 92 for 41). An SQL
 * dump is 1.05-2x its image (text-heavy to blob-heavy), so 24 MiB of SQL is at most ~23 MiB of
 * image: ~65 MiB at the peak, plus ~20 MiB of WebAssembly memory and the bundle. A larger
 * export is refused before anything is loaded; the CLI on Node backs it up instead.
 */
export const WORKER_D1_DUMP_MAX_BYTES = 24 * 1024 * 1024;

export async function createWorkerRuntime(logger: Logger): Promise<Runtime> {
  return {
    sqlite: await loadSqlite(),
    // Workers' gzip has a fixed level; GZIP_LEVEL applies on Node only. Paced: workerd's
    // CompressionStream takes every chunk written and buffers its output; the input comes
    // through an IdentityTransformStream (functions/paced-transform.ts says why).
    gzip: () => pacedTransform(new CompressionStream("gzip") as unknown as ByteTransform, new IdentityTransformStream() as unknown as ByteTransform),
    gunzip: () => new DecompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>,
    sha256: digestSha256,
    now: () => new Date(),
    random: () => crypto.getRandomValues(new Uint32Array(1))[0]! / 2 ** 32,
    logger,
    ...(wasmMemory ? { wasmMemoryBytes: () => wasmMemory!.buffer.byteLength } : {}),
    quickCheckMaxBytes: WORKER_QUICK_CHECK_MAX_BYTES,
  };
}
