/**
 * Restore a backup to a local file, atomically. The object streams — age decryption for an
 * encrypted backup, then gunzip — into a new temp file in the target's directory while its
 * bytes are counted, hashed and structurally checked (one pass; nothing is held whole).
 * The temp file is synced and proved from disk: up to RESTORE_SQLITE_CHECK_MAX_BYTES it is
 * read back and SQLite runs `PRAGMA integrity_check` on it; above that it is read back in
 * chunks to prove its sha256, and the structural check is its check. Only then is it renamed
 * over the target. On any failure the temp file is removed and the target is left as it
 * was, so a corrupt or tampered backup never replaces a database. The file system is passed
 * in (runtime-free).
 */
import { resolveBackup } from "./catalog.js";
import type { Config } from "./config.js";
import { PROGRESS_INTERVAL_MS, throttle } from "./log.js";
import { asBackupError, BackupError } from "./errors.js";
import type { Runtime } from "./runtime.js";
import { fillFrom, type PositionalReader } from "./sources/source.js";
import { d1SqlDump } from "./sqlite/sql-dump.js";
import type { BackupStore } from "./store/store.js";
import {
  backupMetadata,
  expectSha256,
  openBackup,
  proveImage,
  proveStreamed,
  readBackProblem,
  streamImage,
  type BackupMetadata,
  type ProvedImage,
  type StreamedImage,
} from "./verify.js";

/**
 * Restored databases up to this size are proved by SQLite itself: the temp file is read back
 * into one buffer and sql.js runs `PRAGMA integrity_check` on it, which besides the b-tree
 * checks compares every index with its table. That costs memory of the database's size plus
 * sql.js's heap, so a larger database is never held: the structural check that ran on its
 * pages as they streamed to the temp file (SQLite's b-tree checks, what `PRAGMA quick_check`
 * verifies of the file's structure, src/sqlite/structure.ts) is its check, and the temp file
 * is read back in chunks only to prove its sha256. Measured above the limit: the process grew
 * by 35–60 MiB restoring 293 MiB to 1 GiB, against 348 MiB for 293 MiB when it was held.
 */
export const RESTORE_SQLITE_CHECK_MAX_BYTES = 256 * 1024 * 1024;

/** Chunk size for hashing the temp file back from disk (files over RESTORE_SQLITE_CHECK_MAX_BYTES). */
const READ_BACK_CHUNK_BYTES = 1024 * 1024;

/** Why a temp file whose streamed bytes matched the metadata reads back differently. */
const DISK_MISMATCH = "the temp file read back from disk is not what was written to it (a disk, file system or memory fault); nothing was replaced";

export interface PathInfo {
  /** As seen by lstat: a symbolic link is reported as such, not followed. */
  kind: "file" | "directory" | "symlink" | "other";
  size: number;
  /** Permission bits (0o777 part). */
  mode: number;
}

export interface WritableFile {
  /** Write all of `chunk` at the current end of the file. */
  write(chunk: Uint8Array): Promise<void>;
  /** fsync: the written bytes are on stable storage when it resolves. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface ReadableFile extends PositionalReader {
  close(): Promise<void>;
}

/**
 * What a restore needs from a file system. Implementations throw BackupErrors that name
 * the path and the problem (missing directory, permission denied, disk full …).
 */
export interface RestoreFiles {
  /** What is at `path` itself (a symbolic link is not followed); undefined when nothing is. */
  stat(path: string): Promise<PathInfo | undefined>;
  /** What `path` is after following symbolic links: "missing", "directory" or "other". */
  directory(path: string): Promise<"missing" | "directory" | "other">;
  /** Create a new file, failing if anything exists at `path` (O_CREAT|O_EXCL), with permission bits `mode` if given. */
  createExclusive(path: string, mode?: number): Promise<WritableFile>;
  open(path: string): Promise<ReadableFile>;
  /** Atomically replace `to` with `from` (same directory). */
  rename(from: string, to: string): Promise<void>;
  /** Delete a file; resolves false when there was none. */
  remove(path: string): Promise<boolean>;
  /** Make renames and deletions in `dir` durable (fsync the directory) where the platform can. */
  syncDirectory(dir: string): Promise<void>;
}

export interface RestoreDeps {
  config: Pick<Config, "name" | "maxBytes"> & { s3: Pick<Config["s3"], "prefix"> };
  runtime: Pick<Runtime, "sqlite" | "gunzip" | "sha256" | "random" | "logger">;
  store: BackupStore;
  files: RestoreFiles;
  /** age identities (AGE-SECRET-KEY-1…) for encrypted backups. */
  identities?: readonly string[];
  /** Largest database proved with `PRAGMA integrity_check` in memory; default RESTORE_SQLITE_CHECK_MAX_BYTES. */
  sqliteCheckMaxBytes?: number;
}

export interface RestoreOptions {
  /** "latest" or a backup file name. */
  which: string;
  /** The database file to create or replace (absolute paths give the clearest messages). */
  target: string;
  /** Replace an existing target. */
  force?: boolean;
  /** Restore only when the target does not exist; otherwise do nothing (and do not contact the store). */
  ifMissing?: boolean;
  /**
   * "sqlite" (default): the database file. "sql": the SQL that `wrangler d1 execute --file`
   * takes (src/sqlite/sql-dump.ts), written from the proved image, so that a D1 database can
   * be recreated from any backup.
   */
  format?: RestoreFormat;
}

export type RestoreFormat = "sqlite" | "sql";

export type RestoreResult =
  | {
      restored: true;
      key: string;
      file: string;
      target: string;
      bytes: number;
      sha256: string;
      pageSize: number;
      pageCount: number;
      /** An existing target was replaced (--force). */
      replaced: boolean;
      /** Stale -wal, -shm or -journal files of the target that were deleted. */
      removed: string[];
      format: RestoreFormat;
      /** format "sql": bytes of SQL written to the target. */
      sqlBytes?: number;
    }
  | { restored: false; target: string; reason: "exists" };

/** Files SQLite would apply to, or consult for, the database at `target`. */
export const COMPANION_SUFFIXES = ["-wal", "-shm", "-journal"] as const;

export function splitPath(path: string): { dir: string; base: string } {
  const at = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (at < 0) return { dir: ".", base: path };
  return { dir: at === 0 ? path.slice(0, 1) : path.slice(0, at), base: path.slice(at + 1) };
}

function randomHex(random: () => number, digits: number): string {
  let out = "";
  while (out.length < digits) out += Math.floor(random() * 16).toString(16);
  return out;
}

function unwritable(err: unknown, action: string): BackupError {
  if (err instanceof BackupError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new BackupError("TARGET_UNWRITABLE", `${action} failed: ${detail}`, 500, { cause: err });
}

export async function restoreBackup(deps: RestoreDeps, options: RestoreOptions): Promise<RestoreResult> {
  const { config, runtime, store, files } = deps;
  const { target, force = false, ifMissing = false, format = "sqlite" } = options;
  if (force && ifMissing) throw new BackupError("BAD_REQUEST", "--force and --if-missing contradict each other: choose one.", 400);
  const { dir, base } = splitPath(target);
  if (base === "" || base === "." || base === "..") throw new BackupError("TARGET_UNWRITABLE", `${target} is not a file path to restore to.`, 400);

  // 1. The target: decided before any store call, so --if-missing works while the store is down.
  const existing = await checkTarget(files, target, { force, ifMissing });
  if (existing.action === "skip") {
    runtime.logger.info("restore skipped: target exists", { target });
    return { restored: false, target, reason: "exists" };
  }
  const folder = await files.directory(dir);
  if (folder !== "directory") {
    throw new BackupError(
      "TARGET_UNWRITABLE",
      folder === "other" ? `cannot restore to ${target}: ${dir} is not a directory.` : `cannot restore to ${target}: directory ${dir} does not exist (create it first).`,
      400,
    );
  }

  // 2. The backup and what its metadata promises.
  const found = await resolveBackup(store, config, options.which);
  const head = await store.head(found.key);
  if (!head) throw new BackupError("BACKUP_NOT_FOUND", `backup ${found.file} does not exist in ${store.description}.`, 404);
  const expected = backupMetadata(head, config.maxBytes);
  const log = runtime.logger.child({ name: config.name, key: found.key });
  log.info("restore started", { target, bytes: expected.bytes, sha256: expected.sha256, encrypted: expected.encrypted, store: store.description });

  // 3. Download into a new temp file next to the target (same file system: the rename is atomic).
  const temp = `${dir === "/" ? "" : dir}/.${base}.restore-${randomHex(runtime.random, 12)}.tmp`;
  let created = false;
  try {
    // An encrypted backup's header is opened before the temp file exists: a missing or
    // wrong identity fails without creating anything next to the target.
    const body = await openBackup(store, found.key, expected, deps.identities);
    let file: WritableFile;
    try {
      file = await files.createExclusive(temp, existing.action === "replace" ? existing.mode : undefined);
    } catch (err) {
      await body.cancel(err).catch(() => undefined);
      throw err;
    }
    created = true;
    const report = throttle<number>(PROGRESS_INTERVAL_MS, Date.now, (n) => log.info("restoring", { bytesRead: n, totalBytes: expected.bytes }));
    const streamed = await download(body, runtime, found.key, expected, file, report);
    log.info("restore downloaded", { temp, bytes: expected.bytes });

    // 4. Prove it. The bytes that streamed must be the backup's (a tampered or damaged object
    //    fails here), and what is on disk must be those bytes.
    const what = `the restored copy of ${found.key} (${temp})`;
    expectSha256(what, streamed, expected);
    const limit = deps.sqliteCheckMaxBytes ?? RESTORE_SQLITE_CHECK_MAX_BYTES;
    let proved: ProvedImage;
    let held: Uint8Array | undefined;
    if (expected.bytes <= limit) {
      const image = await readFile(files, temp, found.key, expected);
      held = image;
      proved = await proveImage(runtime, image, expected, what, DISK_MISMATCH);
      if (streamed.structure.findings.length > 0) {
        // SQLite's verdict stands; a disagreement is worth knowing about.
        log.warn("the structural check found problems that PRAGMA integrity_check did not; SQLite's verdict is kept", { findings: streamed.structure.findings.slice(0, 3) });
      }
    } else {
      await hashFile(files, temp, runtime, found.key, expected, what);
      if (!streamed.structure.complete) log.warn("the structural check could not read the whole schema in one pass: trees it declares were not walked");
      proved = proveStreamed(runtime, streamed, expected, what);
    }
    log.info("restore verified", {
      bytes: proved.bytes,
      sha256: proved.sha256,
      pageCount: proved.pageCount,
      check: proved.check,
      ...(proved.check === "structure" ? { why: `over ${limit} bytes: not held in memory for SQLite` } : {}),
      integrity: proved.integrity,
    });

    if (format === "sql") {
      // The proved image, written as SQL into a second temp file that replaces the target.
      const image = held ?? (await readFile(files, temp, found.key, expected));
      const sqlTemp = `${temp}.sql`;
      let sqlCreated = false;
      try {
        const file = await files.createExclusive(sqlTemp, existing.action === "replace" ? existing.mode : undefined);
        sqlCreated = true;
        const sqlBytes = await writeSql(runtime, image, file);
        await files.remove(temp);
        created = false;
        if (!force && (await files.stat(target))) {
          throw new BackupError("TARGET_EXISTS", `${target} appeared while the backup was being restored; nothing was replaced (use --force to replace it).`, 409);
        }
        await files.rename(sqlTemp, target);
        sqlCreated = false;
        await files.syncDirectory(dir).catch((err: unknown) => log.warn("restored, but the directory could not be synced", { dir, error: asBackupError(err).message }));
        log.info("restored as SQL", { target, bytes: proved.bytes, sqlBytes, sha256: proved.sha256, replaced: existing.action === "replace" });
        return {
          restored: true,
          key: found.key,
          file: found.file,
          target,
          bytes: proved.bytes,
          sha256: proved.sha256,
          pageSize: proved.pageSize,
          pageCount: proved.pageCount,
          replaced: existing.action === "replace",
          removed: [],
          format,
          sqlBytes,
        };
      } finally {
        if (sqlCreated) await files.remove(sqlTemp).catch(() => undefined);
      }
    }

    // 5. Stale companions of the old (or missing) database would be applied to the new one:
    //    SQLite replays a -wal or rolls back a -journal it finds next to a database, whichever
    //    database wrote it. They go first, so the new file is never next to them.
    if (!force && (await files.stat(target))) {
      throw new BackupError("TARGET_EXISTS", `${target} appeared while the backup was being restored; nothing was replaced (use --force to replace it).`, 409);
    }
    const removed: string[] = [];
    for (const suffix of COMPANION_SUFFIXES) {
      if (await files.remove(`${target}${suffix}`)) removed.push(`${target}${suffix}`);
    }
    if (removed.length) log.warn("removed stale companion files of the target", { removed });
    await files.rename(temp, target);
    created = false;
    // The restore has happened; a directory that cannot be synced only weakens its durability.
    await files.syncDirectory(dir).catch((err: unknown) => log.warn("restored, but the directory could not be synced", { dir, error: asBackupError(err).message }));
    log.info("restored", { target, bytes: proved.bytes, sha256: proved.sha256, replaced: existing.action === "replace" });
    return {
      restored: true,
      key: found.key,
      file: found.file,
      target,
      bytes: proved.bytes,
      sha256: proved.sha256,
      pageSize: proved.pageSize,
      pageCount: proved.pageCount,
      replaced: existing.action === "replace",
      removed,
      format,
    };
  } catch (err) {
    const e = unwritable(err, `restoring ${found.file} to ${target}`);
    if (created) {
      await files.remove(temp).catch((cleanup: unknown) => {
        log.error("could not remove the temp file of a failed restore", { temp, error: asBackupError(cleanup).message });
      });
    }
    log.error("restore failed; the target was not changed", { target, error: e.message, code: e.code });
    throw e;
  }
}

/** The image as D1's SQL into `file` (synced and closed); the bytes written. */
async function writeSql(runtime: Pick<Runtime, "sqlite">, image: Uint8Array, file: WritableFile): Promise<number> {
  const db = new runtime.sqlite.Database(image);
  const encoder = new TextEncoder();
  let written = 0;
  try {
    let pending = "";
    for (const piece of d1SqlDump(db)) {
      pending += piece;
      if (pending.length >= 1024 * 1024) {
        const bytes = encoder.encode(pending);
        await file.write(bytes);
        written += bytes.length;
        pending = "";
      }
    }
    const bytes = encoder.encode(pending);
    await file.write(bytes);
    written += bytes.length;
    await file.sync();
  } finally {
    db.close();
    await file.close().catch(() => undefined);
  }
  return written;
}

/** "create": nothing there; "replace": a file to overwrite (force), whose permission bits the new file keeps; "skip": if-missing and present. */
async function checkTarget(
  files: RestoreFiles,
  target: string,
  o: { force: boolean; ifMissing: boolean },
): Promise<{ action: "create" | "skip" } | { action: "replace"; mode: number }> {
  const info = await files.stat(target);
  if (!info) return { action: "create" };
  if (info.kind === "directory") throw new BackupError("TARGET_UNWRITABLE", `cannot restore to ${target}: it is a directory (give the database file's path).`, 400);
  if (info.kind === "symlink") {
    throw new BackupError("TARGET_UNWRITABLE", `cannot restore to ${target}: it is a symbolic link (restore to the file it points to; a rename would replace the link).`, 400);
  }
  if (info.kind !== "file") throw new BackupError("TARGET_UNWRITABLE", `cannot restore to ${target}: it is not a regular file.`, 400);
  if (o.ifMissing) return { action: "skip" };
  if (!o.force) throw new BackupError("TARGET_EXISTS", `${target} already exists (${info.size} bytes); use --force to replace it, or --if-missing to keep it.`, 409);
  return { action: "replace", mode: info.mode };
}

/**
 * The gzip stream → gunzip → the temp file, counted, hashed and structurally checked on the
 * way (streamImage), stopping as soon as the content runs past its announced size; each
 * chunk is written before the next is read, so memory stays flat. Then the file is synced.
 */
async function download(
  body: ReadableStream<Uint8Array>,
  runtime: Pick<Runtime, "gunzip" | "sha256">,
  key: string,
  expected: BackupMetadata,
  file: WritableFile,
  onProgress: (bytes: number) => void,
): Promise<StreamedImage> {
  let streamed: StreamedImage;
  try {
    streamed = await streamImage(body.pipeThrough(runtime.gunzip()), runtime.sha256(), {
      expectedBytes: expected.bytes,
      problem: readBackProblem(key, expected),
      sink: (chunk) => file.write(chunk),
      onProgress,
    });
    await file.sync();
  } catch (err) {
    await file.close().catch(() => undefined);
    throw err;
  }
  await file.close();
  return streamed;
}

/** The temp file must be exactly the expected size: a different size is an error. */
async function expectSize(files: RestoreFiles, path: string, key: string, expected: BackupMetadata): Promise<void> {
  const info = await files.stat(path);
  if (info?.size !== expected.bytes) {
    throw readBackProblem(key, expected)({ kind: "wrong-length", bytes: info?.size ?? 0, expected: expected.bytes, complete: true });
  }
}

/** The whole temp file into one buffer of its expected size (for sql.js). */
async function readFile(files: RestoreFiles, path: string, key: string, expected: BackupMetadata): Promise<Uint8Array> {
  const { bytes } = expected;
  await expectSize(files, path, key, expected);
  const buffer = new Uint8Array(bytes);
  const handle = await files.open(path);
  try {
    const read = await fillFrom(handle, buffer);
    if (read < bytes) throw new BackupError("VERIFY_FAILED", `${path} ended after ${read} of ${bytes} bytes while it was read back.`, 502);
  } finally {
    await handle.close();
  }
  return buffer;
}

/** Hash the temp file back from disk in chunks and compare with the metadata's sha256 (memory: one chunk). */
async function hashFile(files: RestoreFiles, path: string, runtime: Pick<Runtime, "sha256">, key: string, expected: BackupMetadata, what: string): Promise<void> {
  const { bytes } = expected;
  await expectSize(files, path, key, expected);
  const hasher = runtime.sha256();
  const handle = await files.open(path);
  // One buffer for the whole file: fresh 1 MiB buffers per chunk left up to ~40 MiB of
  // garbage and allocator fragmentation behind on a 600 MiB restore. The hasher consumes each
  // chunk before update returns (Node's createHash; restore runs where there is a file system).
  const buffer = new Uint8Array(Math.min(READ_BACK_CHUNK_BYTES, bytes));
  try {
    let offset = 0;
    while (offset < bytes) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, bytes - offset));
      let filled = 0;
      while (filled < chunk.length) {
        const { bytesRead } = await handle.read(chunk, filled, chunk.length - filled, offset + filled);
        if (bytesRead === 0) throw new BackupError("VERIFY_FAILED", `${path} ended after ${offset + filled} of ${bytes} bytes while it was read back.`, 502);
        filled += bytesRead;
      }
      hasher.update(chunk);
      offset += filled;
    }
  } finally {
    await handle.close();
  }
  expectSha256(what, { bytes, sha256: await hasher.digest() }, expected, DISK_MISMATCH);
}
