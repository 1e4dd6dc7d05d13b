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
  /** The D1 export's bookmark (d1:// sources): the point in D1's history the image holds. */
  d1Bookmark?: string;
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

/**
 * The image as a stream (CHECK=structure and the large databases of CHECK=auto): the same
 * bytes `read` would return, delivered as the source delivers them, never held whole.
 */
export interface SourceStream {
  stream: ReadableStream<Uint8Array>;
  /** Bytes of the image when known before reading (file size, Content-Length). */
  bytes?: number;
  /**
   * After the stream has ended: resolves with what the read saw, or rejects with
   * SourceChanged when the source changed under the read (the copy may mix two states).
   */
  settled(): Promise<Pick<SourceImage, "wal" | "d1Bookmark">>;
  /**
   * The whole image, when the source built it in memory anyway (D1): taken as it is where the
   * run wants the image held, instead of a second copy collected from `stream`.
   */
  image?: SourceImage;
}

export interface OpenOptions {
  maxBytes: number;
}

/** The source changed while it was read: the copy is not consistent, and a new read may be. */
export class SourceChanged extends Error {
  constructor(
    readonly reason: string,
    /** A rollback journal was live (a transaction in progress, or one a crashed writer left). */
    readonly hotJournal = false,
  ) {
    super(reason);
  }
}

export interface Source {
  readonly origin: string;
  read(options: ReadOptions): Promise<SourceImage>;
  /** The image as a stream, read once; a caller that sees SourceChanged may open again. */
  open(options: OpenOptions): Promise<SourceStream>;
  /** The image's size when it costs no transfer to know (a file's stat); undefined otherwise. */
  size?(): Promise<number | undefined>;
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
