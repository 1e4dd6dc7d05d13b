/**
 * What the core needs from its runtime, passed in rather than imported, so the same
 * pipeline runs on Node and Workers and tests can substitute a clock or a logger.
 */
import type { SqlJsStatic } from "sql.js";
import type { Logger } from "./log.js";

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
}
