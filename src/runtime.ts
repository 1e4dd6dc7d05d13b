/**
 * What the core needs from its runtime, passed in rather than imported, so the same
 * pipeline runs on Node and Workers and tests can substitute a clock or a logger.
 */
import type { SqlJsStatic } from "sql.js";
import type { Logger } from "./log.js";
import type { ImageInfo, SqlCheckMode } from "./sqlite/check.js";

export interface Sha256 {
  update(data: Uint8Array): void;
  /** Lowercase hex. */
  digest(): Promise<string>;
}

export type ByteTransform = ReadableWritablePair<Uint8Array, Uint8Array>;

export interface Runtime {
  sqlite: SqlJsStatic;
  /** A gzip compressor at `level` (1-9; runtimes without levels may ignore it). */
  gzip(level: number): ByteTransform;
  gunzip(): ByteTransform;
  sha256(): Sha256;
  now(): Date;
  /** Uniform in [0, 1); used for key suffixes. */
  random(): number;
  logger: Logger;
  /**
   * Check an image on another thread, reading it in place, so that compressing and uploading
   * need not wait (Node: a worker thread on a SharedArrayBuffer). Undefined when this runtime
   * cannot (Workers) or this image cannot be shared: the caller then checks it inline. The
   * image must not change until the promise settles. SQLite's checks only: CHECK=structure
   * always runs inline (src/snapshot.ts).
   */
  checkInBackground?(image: Uint8Array, check: SqlCheckMode, what: string): Promise<ImageInfo> | undefined;
  /**
   * Bytes of WebAssembly memory sql.js holds (it only grows). Workers count it against the
   * isolate's 128 MB beside the JS heap and the image, so the run logs it; undefined where
   * the runtime cannot tell.
   */
  wasmMemoryBytes?(): number;
  /**
   * CHECK=auto: the largest image checked with SQLite's quick_check, which needs the whole
   * image in memory; larger ones (or of unknown size) stream with the structural check.
   */
  quickCheckMaxBytes: number;
}
