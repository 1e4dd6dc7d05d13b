/**
 * Source bytes → a consistent database image, what describes it, and the check's verdict.
 *
 * Everything the upload needs before it starts (sha256, size, page size and count from the
 * header, the SQLite version) is known without the check. So where the runtime can check on
 * another thread, the check runs beside compression and upload, and only the end of the
 * upload waits for its verdict (src/backup.ts); elsewhere it runs here, before anything else.
 * CHECK=structure always runs here: TypeScript over the pages in one pass, without SQLite, it
 * needs no thread of its own.
 */
import type { CheckMode } from "./config.js";
import { sha256Of } from "./compress.js";
import { BackupError } from "./errors.js";
import { checkImage, sqliteVersionOf, type ImageInfo } from "./sqlite/check.js";
import { markRollbackJournal, readHeader, type SqliteHeader } from "./sqlite/header.js";
import type { Runtime } from "./runtime.js";
import type { SourceImage } from "./sources/source.js";

export interface Snapshot {
  bytes: Uint8Array;
  origin: string;
  sha256: string;
  pageSize: number;
  pageCount: number;
  sqliteVersion: string;
  /** The source was a WAL-mode file; the image is marked rollback-journal (see markRollbackJournal). */
  fromWalMode: boolean;
  /**
   * The check's verdict: rejects with SQLITE_CORRUPT when the image fails it. Already settled
   * when the check ran inline; otherwise nothing may be committed before it resolves, and
   * `bytes` must not change until it settles.
   */
  checked: Promise<ImageInfo>;
  /** Whether the check runs on another thread (the verdict may still be pending). */
  inBackground: boolean;
}

export async function takeSnapshot(image: SourceImage, runtime: Pick<Runtime, "sqlite" | "sha256" | "checkInBackground">, check: CheckMode): Promise<Snapshot> {
  const { bytes, origin } = image;
  const header = readHeader(bytes, origin);
  const fromWalMode = markRollbackJournal(bytes);
  // Started before hashing, so that the other thread checks while this one hashes.
  const background = check === "structure" ? undefined : runtime.checkInBackground?.(bytes, check, origin);
  const checked = background ? background.then((info) => agreesWithHeader(info, header, origin)) : Promise.resolve(agreesWithHeader(checkImage(runtime.sqlite, bytes, check, origin), header, origin));
  // Observed here so that an early failure is never "unhandled"; the pipeline awaits it.
  checked.catch(() => undefined);
  // The digest covers exactly the bytes that get compressed (the header mark included).
  const sha256 = await sha256Of(bytes, runtime.sha256());
  return {
    bytes,
    origin,
    sha256,
    pageSize: header.pageSize,
    pageCount: header.pageCount,
    sqliteVersion: sqliteVersionOf(runtime.sqlite),
    fromWalMode,
    checked,
    inBackground: background !== undefined,
  };
}

/**
 * The object's metadata takes page size and count from the header (readHeader follows
 * SQLite's own rule for the in-header size), before SQLite has looked: make sure it agrees.
 */
function agreesWithHeader(info: ImageInfo, header: SqliteHeader, what: string): ImageInfo {
  if (info.pageSize !== header.pageSize || info.pageCount !== header.pageCount) {
    throw new BackupError(
      "SQLITE_CORRUPT",
      `${what}: its header describes ${header.pageCount} pages of ${header.pageSize} bytes, but SQLite reads ${info.pageCount} pages of ${info.pageSize} bytes.`,
      422,
    );
  }
  return info;
}
