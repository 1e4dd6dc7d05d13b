/**
 * The file system a restore writes through (src/restore.ts `RestoreFiles`), on node:fs:
 * exclusive creation of the temp file, fsync of the file and of its directory, rename, and
 * errno values turned into errors that say what to do.
 */
import { lstat, open, rename, stat, unlink } from "node:fs/promises";
import { BackupError } from "../src/errors.js";
import type { PathInfo, ReadableFile, RestoreFiles, WritableFile } from "../src/restore.js";

function errnoOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;
}

const REASONS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "disk full (no space left on device)",
  EDQUOT: "disk quota exceeded",
  EISDIR: "is a directory",
  ENOTDIR: "a component of the path is not a directory",
  EROFS: "read-only file system",
  EEXIST: "already exists",
  EXDEV: "not on the same file system",
  EIO: "input/output error",
};

/** An fs error as a TARGET_UNWRITABLE that names the action, the path and the reason. */
export function fsError(err: unknown, action: string): BackupError {
  if (err instanceof BackupError) return err;
  const code = errnoOf(err);
  const reason = (code && REASONS[code]) ?? (err instanceof Error ? err.message : String(err));
  return new BackupError("TARGET_UNWRITABLE", `${action} failed: ${reason}${code && REASONS[code] ? ` (${code})` : ""}.`, 500, { cause: err });
}

async function attempt<T>(action: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw fsError(err, action);
  }
}

export const nodeRestoreFiles: RestoreFiles = {
  async stat(path): Promise<PathInfo | undefined> {
    try {
      const st = await lstat(path);
      const kind = st.isFile() ? "file" : st.isDirectory() ? "directory" : st.isSymbolicLink() ? "symlink" : "other";
      return { kind, size: st.size, mode: st.mode & 0o777 };
    } catch (err) {
      // ENOTDIR: a parent is a file, so nothing can be at `path` (the directory check names it).
      if (errnoOf(err) === "ENOENT" || errnoOf(err) === "ENOTDIR") return undefined;
      throw fsError(err, `inspecting ${path}`);
    }
  },

  async directory(path) {
    try {
      return (await stat(path)).isDirectory() ? "directory" : "other";
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return "missing";
      if (errnoOf(err) === "ENOTDIR") return "other";
      throw fsError(err, `inspecting ${path}`);
    }
  },

  async createExclusive(path, mode): Promise<WritableFile> {
    const handle = await attempt(`creating ${path}`, () => open(path, "wx", mode ?? 0o666));
    try {
      // open's mode is filtered by the umask; a replaced database keeps its exact permissions.
      if (mode !== undefined) await handle.chmod(mode);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw fsError(err, `setting the permissions of ${path}`);
    }
    return {
      write: (chunk) =>
        attempt(`writing ${path}`, async () => {
          let offset = 0;
          while (offset < chunk.byteLength) {
            const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
            offset += bytesWritten;
          }
        }),
      sync: () => attempt(`syncing ${path}`, () => handle.sync()),
      close: () => attempt(`closing ${path}`, () => handle.close()),
    };
  },

  async open(path): Promise<ReadableFile> {
    const handle = await attempt(`opening ${path}`, () => open(path, "r"));
    return {
      read: (buffer, offset, length, position) => attempt(`reading ${path}`, () => handle.read(buffer, offset, length, position)),
      close: () => handle.close(),
    };
  },

  rename: (from, to) => attempt(`renaming ${from} to ${to}`, () => rename(from, to)),

  async remove(path) {
    try {
      await unlink(path);
      return true;
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return false;
      throw fsError(err, `removing ${path}`);
    }
  },

  async syncDirectory(dir) {
    let handle;
    try {
      handle = await open(dir, "r");
      await handle.sync();
    } catch (err) {
      // Windows cannot open or fsync a directory; there the rename is as durable as it gets.
      if (["EISDIR", "EPERM", "EINVAL", "ENOTSUP", "EBADF"].includes(errnoOf(err) ?? "")) return;
      throw fsError(err, `syncing directory ${dir}`);
    } finally {
      await handle?.close().catch(() => undefined);
    }
  },
};
