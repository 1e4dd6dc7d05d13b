/**
 * A database file on a local disk (Node). The file system is passed in so the core stays
 * runtime-free; Node's `fs/promises` fits the interface as is.
 */
import { BackupError } from "../errors.js";
import { READ_CHUNK_BYTES, type ReadOptions, type Source, type SourceImage } from "./source.js";

export interface FileStat {
  size: number;
  mtimeMs: number;
  isFile(): boolean;
}
export interface FileHandleLike {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}
export interface FileAccess {
  stat(path: string): Promise<FileStat>;
  open(path: string, flags: "r"): Promise<FileHandleLike>;
}

// First 8 bytes of a rollback journal whose transaction has not finished (a "hot" journal).
const JOURNAL_MAGIC = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

function errnoOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;
}

async function statOrUndefined(fs: FileAccess, path: string): Promise<FileStat | undefined> {
  try {
    return await fs.stat(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
}

export function fileSource(fs: FileAccess, path: string): Source {
  const origin = `file ${path}`;

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

  /** Refuse states where the main file alone is not the committed database. */
  async function checkCompanions(): Promise<void> {
    const wal = await statOrUndefined(fs, `${path}-wal`);
    if (wal && wal.size > 0) {
      throw new BackupError(
        "WAL_NOT_APPLIED",
        `${path}-wal holds ${wal.size} bytes of WAL frames, and committed WAL frames are not applied yet: a backup of the main file alone would silently drop committed rows. ` +
          `Checkpoint first (sqlite3 ${path} "PRAGMA wal_checkpoint(TRUNCATE)") or back up a VACUUM INTO copy.`,
        409,
      );
    }
    const journal = await statOrUndefined(fs, `${path}-journal`);
    if (journal && journal.size >= JOURNAL_MAGIC.length) {
      const head = new Uint8Array(JOURNAL_MAGIC.length);
      const fh = await fs.open(`${path}-journal`, "r");
      try {
        await fh.read(head, 0, head.length, 0);
      } finally {
        await fh.close();
      }
      if (JOURNAL_MAGIC.every((b, i) => head[i] === b)) {
        throw new BackupError(
          "HOT_JOURNAL",
          `${path}-journal is a live rollback journal: a transaction is being written. Try again when it has committed.`,
          409,
        );
      }
    }
  }

  return {
    origin,
    async read({ maxBytes, onProgress }: ReadOptions): Promise<SourceImage> {
      const before = await statDatabase();
      if (before.size > maxBytes) {
        throw new BackupError("SOURCE_TOO_LARGE", `${origin} is ${before.size} bytes, over MAX_BYTES (${maxBytes}).`, 413);
      }
      await checkCompanions();
      // One buffer of exactly the file's size, filled in chunks: no 2 GiB readFile limit, no second copy.
      const bytes = new Uint8Array(before.size);
      const fh = await fs.open(path, "r");
      try {
        let offset = 0;
        while (offset < bytes.length) {
          const { bytesRead } = await fh.read(bytes, offset, Math.min(READ_CHUNK_BYTES, bytes.length - offset), offset);
          if (bytesRead === 0) break;
          offset += bytesRead;
          onProgress?.(offset, bytes.length);
        }
        const extra = await fh.read(new Uint8Array(1), 0, 1, offset);
        if (offset !== bytes.length || extra.bytesRead !== 0) {
          throw new BackupError("SOURCE_CHANGED", `${origin} changed size while it was being read; try again.`, 409);
        }
      } finally {
        await fh.close();
      }
      const after = await statDatabase();
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
        throw new BackupError("SOURCE_CHANGED", `${origin} was modified while it was being read; try again.`, 409);
      }
      await checkCompanions();
      return { bytes, origin };
    },
  };
}
