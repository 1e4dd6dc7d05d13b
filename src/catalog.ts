/**
 * Finding backups: list one name's backups, resolve `latest` or a file name to a key, and
 * sign a download link. Names from users are validated before any store call.
 */
import type { Config } from "./config.js";
import { BackupError } from "./errors.js";
import { backupFolder, newestFirst, parseFile, parseKey } from "./keys.js";
import type { BackupStore } from "./store/store.js";

export interface BackupEntry {
  key: string;
  file: string;
  size: number;
  lastModified: string;
}

export interface Link {
  url: string;
  key: string;
  expiresAt: string;
  size: number;
}

type Where = Pick<Config, "name"> & { s3: Pick<Config["s3"], "prefix"> };

/** This name's backups, newest first. Objects that are not ours are left out. */
export async function listBackups(store: BackupStore, where: Where): Promise<BackupEntry[]> {
  const objects = await store.list(backupFolder(where.s3.prefix, where.name));
  const ours = objects.flatMap((o) => {
    const parsed = parseKey(where.s3.prefix, where.name, o.key);
    return parsed ? [{ key: o.key, file: parsed.file, size: o.size, lastModified: o.lastModified.toISOString() }] : [];
  });
  return newestFirst(ours);
}

/** Longer than any valid file name (63-character name + 44 with .age); checked before the pattern. */
export const MAX_FILE_LENGTH = 128;

/**
 * Throws INVALID_BACKUP_FILE (400) unless `file` is exactly one of `name`'s backup file names:
 * one path segment, this name's pattern, a real date. What every route and command that
 * names a backup checks before any store call, so that no request can reach another key.
 */
export function assertBackupFile(name: string, file: string): void {
  if (file.length > MAX_FILE_LENGTH || !parseFile(name, file)) {
    // Echo a valid-looking input only: a hostile one (control characters, a path) is not repeated.
    const shown = /^[\x20-\x7e]{1,128}$/.test(file) ? JSON.stringify(file) : "the given name";
    throw new BackupError(
      "INVALID_BACKUP_FILE",
      `${shown} is not a backup file name of "${name}" (expected ${name}-YYYY-MM-DDTHH-MM-SS-mmmZ-xxxxxx.sqlite.gz, or .sqlite.gz.age for an encrypted backup, or "latest").`,
      400,
    );
  }
}

/** `latest` or a backup file name → the key; throws INVALID_BACKUP_FILE (400) or BACKUP_NOT_FOUND (404). */
export async function resolveBackup(store: BackupStore, where: Where, which: string): Promise<{ key: string; file: string; size: number }> {
  if (which === "latest") {
    const [newest] = await listBackups(store, where);
    if (!newest) throw new BackupError("BACKUP_NOT_FOUND", `there are no backups of "${where.name}" in ${store.description} yet.`, 404);
    return newest;
  }
  assertBackupFile(where.name, which);
  const key = `${backupFolder(where.s3.prefix, where.name)}${which}`;
  const head = await store.head(key);
  if (!head) throw new BackupError("BACKUP_NOT_FOUND", `backup ${which} does not exist in ${store.description}.`, 404);
  return { key, file: which, size: head.size };
}

export async function createLink(store: BackupStore, where: Where & Pick<Config, "linkTtlSeconds">, which: string, now: Date): Promise<Link> {
  const found = await resolveBackup(store, where, which);
  const url = await store.presign(found.key, where.linkTtlSeconds, found.file);
  return { url, key: found.key, expiresAt: new Date(now.getTime() + where.linkTtlSeconds * 1000).toISOString(), size: found.size };
}
