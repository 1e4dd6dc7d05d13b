/**
 * Restore a backup to a local file, atomically: the object is streamed (age decryption for
 * an encrypted backup, then gunzip) into a new temp file in the target's directory, synced, read back and proved (size, sha256 against
 * the metadata, header, `PRAGMA integrity_check`), and only then renamed over the target.
 * On any failure the temp file is removed and the target is left as it was, so a corrupt or
 * tampered backup never replaces a database. The file system is passed in (runtime-free).
 */
import { resolveBackup } from "./catalog.js";
import type { Config } from "./config.js";
import { asBackupError, BackupError } from "./errors.js";
import type { Runtime } from "./runtime.js";
import { fillFrom, type PositionalReader } from "./sources/source.js";
import type { BackupStore } from "./store/store.js";
import { backupMetadata, openBackup, proveImage, readBackProblem, type BackupMetadata } from "./verify.js";

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
}

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
  const { target, force = false, ifMissing = false } = options;
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
    await download(body, runtime, found.key, expected, file);
    log.info("restore downloaded", { temp, bytes: expected.bytes });

    // 4. Prove what is on disk, not what was in memory.
    const image = await readFile(files, temp, found.key, expected);
    const proved = await proveImage(runtime, image, expected, `the restored copy of ${found.key} (${temp})`);
    log.info("restore verified", { bytes: proved.bytes, sha256: proved.sha256, pageCount: proved.pageCount, integrity: proved.integrity });

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

/** The gzip stream → gunzip → file, stopping as soon as the content runs past its announced size. */
async function download(body: ReadableStream<Uint8Array>, runtime: Pick<Runtime, "gunzip">, key: string, expected: BackupMetadata, file: WritableFile): Promise<void> {
  const problem = readBackProblem(key, expected);
  let written = 0;
  try {
    const reader = body.pipeThrough(runtime.gunzip()).getReader();
    try {
      for (;;) {
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          result = await reader.read();
        } catch (cause) {
          throw problem({ kind: "failed", bytes: written, expected: expected.bytes, cause });
        }
        if (result.done) break;
        written += result.value.byteLength;
        if (written > expected.bytes) throw problem({ kind: "wrong-length", bytes: written, expected: expected.bytes, complete: false });
        await file.write(result.value);
      }
    } catch (err) {
      await reader.cancel(err).catch(() => undefined);
      throw err;
    } finally {
      reader.releaseLock();
    }
    if (written !== expected.bytes) throw problem({ kind: "wrong-length", bytes: written, expected: expected.bytes, complete: true });
    await file.sync();
  } catch (err) {
    await file.close().catch(() => undefined);
    throw err;
  }
  await file.close();
}

/** The whole temp file into one buffer of its expected size; a different size is an error. */
async function readFile(files: RestoreFiles, path: string, key: string, expected: BackupMetadata): Promise<Uint8Array> {
  const { bytes } = expected;
  const info = await files.stat(path);
  if (info?.size !== bytes) {
    throw readBackProblem(key, expected)({ kind: "wrong-length", bytes: info?.size ?? 0, expected: bytes, complete: true });
  }
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
