/**
 * A source yields one database image: the exact bytes of the database, in one buffer that
 * the rest of the pipeline shares (sql.js reads it in place, gzip compresses slices of it).
 */
export interface SourceImage {
  bytes: Uint8Array;
  /** Human-readable origin for messages and logs, without secrets ("file /data/app.db"). */
  origin: string;
  /** Reads it took to get a consistent copy (file sources retry torn reads). */
  attempts?: number;
  /** The committed part of `DB-wal` applied onto the main file's pages (file sources in WAL mode). */
  wal?: WalSummary;
}

export interface WalSummary {
  bytes: number;
  committedFrames: number;
  commits: number;
  /** Frames of a transaction that had not committed when the WAL was read: not part of the database. */
  uncommittedFrames: number;
  /** Bytes after the last valid frame (bad checksum, torn write, older WAL generation). */
  ignoredBytes: number;
  /** Set when the whole WAL was ignored, as SQLite ignores it (e.g. "header checksum mismatch"). */
  ignoredBecause?: string;
}

export interface RetryInfo {
  attempt: number;
  attempts: number;
  reason: string;
  delayMs: number;
}

export interface ReadOptions {
  maxBytes: number;
  /** Called as bytes arrive; `total` is known up front for files and sized responses. */
  onProgress?: (read: number, total: number | undefined) => void;
  /** Called before waiting to read again after a torn read. */
  onRetry?: (info: RetryInfo) => void;
}

export interface Source {
  readonly origin: string;
  read(options: ReadOptions): Promise<SourceImage>;
}

/** Read size for chunked reads: big enough for throughput, small enough to report progress. */
export const READ_CHUNK_BYTES = 8 * 1024 * 1024;

export interface PositionalReader {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/**
 * Fill `into` from the start of an open file, in chunks: one buffer of the file's size, no
 * 2 GiB readFile limit, no second copy. Returns the bytes read: fewer than `into.length`
 * when the file is shorter.
 */
export async function fillFrom(file: PositionalReader, into: Uint8Array, onProgress?: (read: number) => void): Promise<number> {
  let offset = 0;
  while (offset < into.length) {
    const { bytesRead } = await file.read(into, offset, Math.min(READ_CHUNK_BYTES, into.length - offset), offset);
    if (bytesRead === 0) break;
    offset += bytesRead;
    onProgress?.(offset);
  }
  return offset;
}
