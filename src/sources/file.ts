/**
 * A database file on a local disk (Node), read while its application may be writing it.
 *
 * There is no way to take SQLite's locks from JavaScript, so the read is optimistic: look
 * at the files, copy them, look again, and keep the copy only if nothing that matters
 * changed in between; otherwise wait and try again. The committed part of `DB-wal` is
 * applied onto the copy, so the image is the database as its next reader would see it.
 *
 * The file system is passed in so the core stays runtime-free; Node's `fs/promises` fits.
 */
import { BackupError } from "../errors.js";
import { headerPageSize } from "../sqlite/header.js";
import { applyWal, readWalHeader, scanWal, walPageIndex, WAL_FRAME_HEADER_BYTES, WAL_HEADER_BYTES, type WalScan } from "../sqlite/wal.js";
import {
  fillFrom,
  SourceChanged,
  type OpenOptions,
  type ReadOptions,
  type PositionalReader,
  type Source,
  type SourceImage,
  type SourceStream,
  type WalSummary,
} from "./source.js";

export interface FileStat {
  size: number;
  mtimeMs: number;
  /** Inode number: a file replaced by rename has a new one. */
  ino?: number;
  isFile(): boolean;
}
export interface FileHandleLike extends PositionalReader {
  close(): Promise<void>;
}
export interface FileAccess {
  stat(path: string): Promise<FileStat>;
  open(path: string, flags: "r"): Promise<FileHandleLike>;
  /**
   * A zeroed buffer for the image (default `new Uint8Array`). Node allocates it in shared
   * memory so that a worker thread can check the image in place while it is compressed.
   */
  allocate?(bytes: number): Uint8Array;
}

export interface FileSourceOptions {
  /** Reads attempted before giving up on a file that keeps changing (READ_ATTEMPTS). */
  attempts?: number;
  /** Waits between attempts; tests pass a fake. */
  sleep?: (ms: number) => Promise<void>;
  /** Jitter for the waits, uniform in [0, 1). */
  random?: () => number;
}

export const DEFAULT_READ_ATTEMPTS = 5;
const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 3000;

/** The wait before attempt `attempt + 1`: exponential, capped, with jitter so that retries do not fall into step with a periodic writer. */
export function retryDelayMs(attempt: number, random: () => number): number {
  const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (attempt - 1));
  return Math.round(base * (0.5 + random()));
}

// First 8 bytes of a rollback journal whose transaction has not finished (a "hot" journal).
const JOURNAL_MAGIC = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
const DB_HEADER_BYTES = 100;

/** A read that saw the files change (or a transaction in progress): worth another attempt. */
const TornRead = SourceChanged;
/** Bytes read from the main file per chunk of a streamed image. */
export const STREAM_CHUNK_BYTES = 1024 * 1024;

interface FileState {
  size: number;
  mtimeMs: number;
  ino: number | undefined;
  /** The first bytes: the database header or the WAL header. */
  head: Uint8Array;
}

/** What is observed before and after a copy. */
interface Observation {
  db: FileState;
  wal: FileState | undefined;
  hotJournal: boolean;
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (!a || !b) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameState(a: FileState | undefined, b: FileState | undefined): boolean {
  if (!a || !b) return a === b;
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && sameBytes(a.head, b.head);
}

export function fileSource(fs: FileAccess, path: string, options: FileSourceOptions = {}): Source {
  const origin = `file ${path}`;
  const attempts = Math.max(1, options.attempts ?? DEFAULT_READ_ATTEMPTS);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const allocate = (bytes: number) => fs.allocate?.(bytes) ?? new Uint8Array(bytes);

  async function statOrUndefined(p: string): Promise<FileStat | undefined> {
    try {
      return await fs.stat(p);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return undefined;
      throw err;
    }
  }

  async function statDatabase(): Promise<FileStat> {
    try {
      const st = await fs.stat(path);
      if (!st.isFile()) throw new BackupError("SOURCE_UNREADABLE", `${origin} is not a regular file.`, 502);
      return st;
    } catch (err) {
      if (err instanceof BackupError) throw err;
      const code = errnoOf(err);
      if (code === "ENOENT") throw new BackupError("SOURCE_NOT_FOUND", `${origin} does not exist (BACKUP_SOURCE).`, 502, { cause: err });
      if (code === "EACCES" || code === "EPERM") {
        throw new BackupError("SOURCE_UNREADABLE", `${origin} cannot be read: permission denied.`, 502, { cause: err });
      }
      throw new BackupError("SOURCE_UNREADABLE", `${origin} cannot be read: ${code ?? String(err)}.`, 502, { cause: err });
    }
  }

  /** Read up to `length` bytes at 0; a file that vanished reads as empty. */
  async function readHead(p: string, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    let fh: FileHandleLike;
    try {
      fh = await fs.open(p, "r");
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return out.subarray(0, 0);
      throw err;
    }
    try {
      const { bytesRead } = await fh.read(out, 0, length, 0);
      return out.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /** Fill `into` from the start of `p` (fillFrom). Returns how many bytes were there and whether there were more. */
  async function readInto(p: string, into: Uint8Array, onProgress?: (read: number) => void): Promise<{ read: number; more: boolean }> {
    const fh = await fs.open(p, "r");
    try {
      const offset = await fillFrom(fh, into, onProgress);
      const beyond = await fh.read(new Uint8Array(1), 0, 1, offset);
      return { read: offset, more: beyond.bytesRead > 0 };
    } finally {
      await fh.close();
    }
  }

  /**
   * The order matters: journal, then WAL, then the main file. A rollback transaction writes
   * the main file only while its journal is hot, and a WAL restart needs a complete
   * checkpoint first, so a main file looked at after the journal and the WAL header cannot
   * hide a change that they do not show.
   */
  async function observe(): Promise<Observation> {
    const journal = await statOrUndefined(`${path}-journal`);
    let hotJournal = false;
    if (journal && journal.size >= JOURNAL_MAGIC.length) {
      const head = await readHead(`${path}-journal`, JOURNAL_MAGIC.length);
      hotJournal = head.length === JOURNAL_MAGIC.length && JOURNAL_MAGIC.every((b, i) => head[i] === b);
    }
    const walStat = await statOrUndefined(`${path}-wal`);
    const wal = walStat ? { size: walStat.size, mtimeMs: walStat.mtimeMs, ino: walStat.ino, head: await readHead(`${path}-wal`, WAL_HEADER_BYTES) } : undefined;
    const dbStat = await statDatabase();
    const dbHead = await readHead(path, DB_HEADER_BYTES);
    return { db: { size: dbStat.size, mtimeMs: dbStat.mtimeMs, ino: dbStat.ino, head: dbHead }, wal, hotJournal };
  }

  /**
   * One optimistic copy. Throws TornRead when the copy may mix two states of the database.
   *
   * Why the order (main file first, WAL after) and the rules below are enough: in WAL mode
   * the main file changes only by checkpoints, which copy frames of the current WAL
   * generation into it. A WAL read after the main file holds every frame a checkpoint
   * could have copied meanwhile, and applying it overwrites each such page with its newest
   * committed version, so a checkpoint during the read is harmless as long as the WAL was
   * not restarted (same header, hence same salts, before and after). Without a WAL to
   * cover for it, the main file must not have changed at all (size, mtime, inode and the
   * header, whose change counter moves with every rollback-journal transaction).
   */
  async function readOnce({ maxBytes, onProgress }: ReadOptions): Promise<SourceImage> {
    const before = await observe();
    if (before.hotJournal) throw new TornRead(`${path}-journal is a live rollback journal: a transaction is being written`, true);
    if (before.db.size > maxBytes) {
      throw new BackupError("SOURCE_TOO_LARGE", `${origin} is ${before.db.size} bytes, over MAX_BYTES (${maxBytes}).`, 413);
    }
    const walHeaderBefore = before.wal ? readWalHeader(before.wal.head).header : undefined;
    // Room for pages that live only in the WAL, so that applying it rarely needs a second buffer.
    const walFrames = walHeaderBefore && before.wal ? Math.max(0, Math.floor((before.wal.size - WAL_HEADER_BYTES) / (WAL_FRAME_HEADER_BYTES + walHeaderBefore.pageSize))) : 0;
    const capacity = Math.min(before.db.size + walFrames * (walHeaderBefore?.pageSize ?? 0), Math.max(before.db.size, maxBytes));
    const buffer = allocate(capacity);

    const db = await readInto(path, buffer.subarray(0, before.db.size), (n) => onProgress?.(n, before.db.size));
    if (db.read !== before.db.size) throw new TornRead(`${path} shrank from ${before.db.size} to ${db.read} bytes during the read`);

    let wal: Uint8Array | undefined;
    const walStat = await statOrUndefined(`${path}-wal`);
    if (walStat && walStat.size > 0) {
      if (walStat.size > maxBytes) {
        throw new BackupError("SOURCE_TOO_LARGE", `${path}-wal is ${walStat.size} bytes, over MAX_BYTES (${maxBytes}): checkpoint the database first.`, 413);
      }
      const walBuffer = new Uint8Array(walStat.size);
      const got = await readInto(`${path}-wal`, walBuffer).catch((err: unknown) => (errnoOf(err) === "ENOENT" ? { read: 0 } : Promise.reject(err)));
      wal = walBuffer.subarray(0, got.read);
    }
    const after = await observe();
    if (after.hotJournal) throw new TornRead(`${path}-journal became a live rollback journal during the read`, true);

    const sameGeneration =
      walHeaderBefore !== undefined &&
      wal !== undefined &&
      sameBytes(before.wal?.head, after.wal?.head) &&
      sameBytes(before.wal?.head, wal.subarray(0, WAL_HEADER_BYTES)) &&
      before.wal?.ino === after.wal?.ino;
    if (sameGeneration) {
      // Checkpoints may have written (and grown) the main file: the WAL copy covers them.
      if (before.db.ino !== after.db.ino) throw new TornRead(`${path} was replaced during the read`);
    } else if (db.more || !sameState(before.db, after.db)) {
      throw new TornRead(`${path} was modified during the read`);
    } else if (!sameState(before.wal, after.wal)) {
      throw new TornRead(`${path}-wal was ${before.wal ? (after.wal ? "restarted or rewritten" : "removed") : "created"} during the read`);
    }

    let scan = wal ? scanWal(wal) : undefined;
    if (scan?.unsupported) {
      throw new BackupError("SOURCE_UNSUPPORTED", `${path}-wal: ${scan.headerProblem}. SQLite refuses to open a database with this WAL; open it with the SQLite that wrote it and checkpoint.`, 422);
    }
    if (scan && before.db.size === 0) {
      // SQLite treats an empty main file as an empty database and discards its WAL.
      scan = { ...scan, header: undefined, headerProblem: "the database file is empty (0 bytes): SQLite ignores its WAL", committedFrames: 0, commits: 0, databasePages: 0 };
    }
    const image = buildImage(buffer, before.db.size, wal, scan, maxBytes);
    return { bytes: image, origin, ...(scan && wal ? { wal: walSummary(scan, wal.length) } : {}) };
  }

  function buildImage(buffer: Uint8Array, dbSize: number, wal: Uint8Array | undefined, scan: WalScan | undefined, maxBytes: number): Uint8Array {
    if (!wal || !scan?.header || scan.commits === 0) return buffer.subarray(0, dbSize);
    const pageSize = scan.header.pageSize;
    const dbPageSize = dbSize >= DB_HEADER_BYTES ? headerPageSize(buffer) : pageSize;
    if (dbPageSize !== pageSize) {
      throw new BackupError(
        "SQLITE_CORRUPT",
        `${path}-wal has ${pageSize}-byte pages but ${path} has ${dbPageSize}-byte pages: the WAL does not belong to this database.`,
        422,
      );
    }
    const bytes = scan.databasePages * pageSize;
    if (bytes > maxBytes) throw new BackupError("SOURCE_TOO_LARGE", `${origin} with its committed WAL is ${bytes} bytes, over MAX_BYTES (${maxBytes}).`, 413);
    let image: Uint8Array;
    if (bytes <= buffer.length) {
      // The buffer is new for this attempt: pages past the main file that no frame writes
      // are still zero, as SQLite would read them.
      image = buffer.subarray(0, bytes);
    } else {
      image = allocate(bytes);
      image.set(buffer.subarray(0, Math.min(dbSize, bytes)));
    }
    applyWal(image, wal, scan);
    return image;
  }

  /** The committed WAL as read now (before the main file: see openStream), or undefined. */
  async function readWal(maxBytes: number): Promise<{ wal: Uint8Array; scan: WalScan } | undefined> {
    const walStat = await statOrUndefined(`${path}-wal`);
    if (!walStat || walStat.size === 0) return undefined;
    if (walStat.size > maxBytes) {
      throw new BackupError("SOURCE_TOO_LARGE", `${path}-wal is ${walStat.size} bytes, over MAX_BYTES (${maxBytes}): checkpoint the database first.`, 413);
    }
    const walBuffer = new Uint8Array(walStat.size);
    const got = await readInto(`${path}-wal`, walBuffer).catch((err: unknown) => (errnoOf(err) === "ENOENT" ? { read: 0 } : Promise.reject(err)));
    const wal = walBuffer.subarray(0, got.read);
    const scan = scanWal(wal);
    if (scan.unsupported) {
      throw new BackupError("SOURCE_UNSUPPORTED", `${path}-wal: ${scan.headerProblem}. SQLite refuses to open a database with this WAL; open it with the SQLite that wrote it and checkpoint.`, 422);
    }
    return { wal, scan };
  }

  /**
   * The image streamed from the main file with the committed WAL pages substituted as they
   * pass: memory is one chunk plus the WAL (which SQLite's checkpoints keep small), never the
   * database. The WAL is read first, so the consistency rules differ from readOnce's: after
   * the stream, a main file changed by a checkpoint is still fine if the WAL is the same
   * generation and has not grown (every frame a checkpoint could copy is in our copy, and
   * overrides the page); otherwise the main file must not have changed at all.
   */
  async function openStream({ maxBytes }: OpenOptions): Promise<SourceStream> {
    const before = await observe();
    if (before.hotJournal) throw new TornRead(`${path}-journal is a live rollback journal: a transaction is being written`, true);
    if (before.db.size > maxBytes) {
      throw new BackupError("SOURCE_TOO_LARGE", `${origin} is ${before.db.size} bytes, over MAX_BYTES (${maxBytes}).`, 413);
    }
    let walRead = await readWal(maxBytes);
    if (walRead && before.db.size === 0) {
      walRead = { ...walRead, scan: { ...walRead.scan, header: undefined, headerProblem: "the database file is empty (0 bytes): SQLite ignores its WAL", committedFrames: 0, commits: 0, databasePages: 0 } };
    }
    const scan = walRead?.scan;
    const useWal = walRead !== undefined && scan?.header !== undefined && scan.commits > 0;
    let imageBytes = before.db.size;
    let pageSize = 0;
    let index = new Map<number, number>();
    if (useWal) {
      pageSize = scan!.header!.pageSize;
      const dbPageSize = before.db.size >= DB_HEADER_BYTES ? headerPageSize(before.db.head) : pageSize;
      if (dbPageSize !== pageSize) {
        throw new BackupError(
          "SQLITE_CORRUPT",
          `${path}-wal has ${pageSize}-byte pages but ${path} has ${dbPageSize}-byte pages: the WAL does not belong to this database.`,
          422,
        );
      }
      imageBytes = scan!.databasePages * pageSize;
      if (imageBytes > maxBytes) throw new BackupError("SOURCE_TOO_LARGE", `${origin} with its committed WAL is ${imageBytes} bytes, over MAX_BYTES (${maxBytes}).`, 413);
      index = walPageIndex(walRead!.wal, scan!);
    }
    // Whole pages per chunk, so that a WAL page never straddles two chunks.
    const chunkBytes = pageSize ? Math.max(pageSize, STREAM_CHUNK_BYTES - (STREAM_CHUNK_BYTES % pageSize)) : STREAM_CHUNK_BYTES;
    const fh = await fs.open(path, "r");
    let offset = 0;
    let grew = false;
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await fh.close();
    };
    const stream = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          try {
            if (offset >= imageBytes) {
              // A main file longer than it was (and than the WAL's database) changed under us.
              if (!useWal) grew = (await fh.read(new Uint8Array(1), 0, 1, before.db.size)).bytesRead > 0;
              await close();
              controller.close();
              return;
            }
            const length = Math.min(chunkBytes, imageBytes - offset);
            const chunk = new Uint8Array(length);
            const fromFile = Math.max(0, Math.min(length, before.db.size - offset));
            let got = 0;
            while (got < fromFile) {
              const { bytesRead } = await fh.read(chunk, got, fromFile - got, offset + got);
              if (bytesRead === 0) throw new TornRead(`${path} shrank below ${before.db.size} bytes during the read`);
              got += bytesRead;
            }
            if (useWal) {
              const first = offset / pageSize + 1;
              for (let p = first; p < first + length / pageSize; p++) {
                const at = index.get(p);
                if (at !== undefined) chunk.set(walRead!.wal.subarray(at, at + pageSize), (p - first) * pageSize);
              }
            }
            offset += length;
            controller.enqueue(chunk);
          } catch (err) {
            await close().catch(() => undefined);
            controller.error(err);
          }
        },
        async cancel() {
          await close();
        },
      },
      { highWaterMark: 0 },
    );

    async function settled(): Promise<Pick<SourceImage, "wal">> {
      const after = await observe();
      if (after.hotJournal) throw new TornRead(`${path}-journal became a live rollback journal during the read`, true);
      const wal = walRead?.wal;
      const walHeaderBefore = wal ? readWalHeader(wal).header : undefined;
      const sameGeneration =
        useWal &&
        walHeaderBefore !== undefined &&
        wal !== undefined &&
        sameBytes(wal.subarray(0, WAL_HEADER_BYTES), after.wal?.head) &&
        before.wal?.ino === after.wal?.ino &&
        after.wal?.size === wal.length;
      if (sameGeneration) {
        if (before.db.ino !== after.db.ino) throw new TornRead(`${path} was replaced during the read`);
      } else if (grew || !sameState(before.db, after.db)) {
        throw new TornRead(`${path} was modified during the read`);
      } else if (!sameState(before.wal, after.wal)) {
        throw new TornRead(`${path}-wal was ${before.wal ? (after.wal ? "written, restarted or rewritten" : "removed") : "created"} during the read`);
      }
      return scan && wal ? { wal: walSummary(scan, wal.length) } : {};
    }

    return { stream, bytes: imageBytes, settled };
  }

  return {
    origin,
    open: openStream,
    async size(): Promise<number | undefined> {
      return (await statDatabase()).size;
    },
    async read(readOptions: ReadOptions): Promise<SourceImage> {
      const started = Date.now();
      for (let attempt = 1; ; attempt++) {
        try {
          const image = await readOnce(readOptions);
          return { ...image, attempts: attempt };
        } catch (err) {
          if (!(err instanceof TornRead)) throw err;
          if (attempt >= attempts) throw keptChanging(origin, err, attempts, Date.now() - started);
          const delayMs = retryDelayMs(attempt, random);
          readOptions.onRetry?.({ attempt, attempts, reason: err.reason, delayMs });
          await sleep(delayMs);
        }
      }
    },
  };
}

/** The error after the last of `attempts` reads that each saw the source change. */
export function keptChanging(origin: string, last: SourceChanged, attempts: number, elapsedMs: number): BackupError {
  const seconds = (elapsedMs / 1000).toFixed(1);
  if (last.hotJournal) {
    return new BackupError(
      "HOT_JOURNAL",
      `${origin}: ${last.reason} on each of ${attempts} attempts over ${seconds} s. A long transaction is in progress, or a crashed writer left the journal: opening the database once with sqlite3 rolls it back.`,
      409,
    );
  }
  return new BackupError(
    "SOURCE_CHANGED",
    `${origin} kept changing while it was read (${attempts} attempts over ${seconds} s; last: ${last.reason}). Try again when the writer is less busy, or raise READ_ATTEMPTS.`,
    409,
  );
}

function walSummary(scan: WalScan, walBytes: number): WalSummary {
  return {
    bytes: walBytes,
    committedFrames: scan.committedFrames,
    commits: scan.commits,
    uncommittedFrames: scan.uncommittedFrames,
    ignoredBytes: scan.invalidTailBytes,
    ...(scan.headerProblem && walBytes > 0 ? { ignoredBecause: scan.headerProblem } : {}),
  };
}
