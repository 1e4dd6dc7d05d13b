/**
 * A source yields one database image: the exact bytes of the database, in one buffer that
 * the rest of the pipeline shares (sql.js reads it in place, gzip compresses slices of it).
 */
export interface SourceImage {
  bytes: Uint8Array;
  /** Human-readable origin for messages and logs, without secrets ("file /data/app.db"). */
  origin: string;
}

export interface ReadOptions {
  maxBytes: number;
  /** Called as bytes arrive; `total` is known up front for files and sized responses. */
  onProgress?: (read: number, total: number | undefined) => void;
}

export interface Source {
  readonly origin: string;
  read(options: ReadOptions): Promise<SourceImage>;
}

/** Read size for chunked reads: big enough for throughput, small enough to report progress. */
export const READ_CHUNK_BYTES = 8 * 1024 * 1024;
