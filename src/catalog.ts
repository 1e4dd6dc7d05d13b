/**
 * Finding backups: list one name's backups, resolve `latest` or a file name to a key, and
 * sign a download link. Names from users are validated before any store call.
 */
import type { Config } from "./config.js";
import { BackupError } from "./errors.js";
import { backupFolder, ENCRYPTED_EXTENSION, newestFirst, parseFile, parseKey } from "./keys.js";
import type { BackupStore } from "./store/store.js";

export interface BackupEntry {
  key: string;
  file: string;
  size: number;
  lastModified: string;
}

/** A listed backup with what its metadata says (GET /backups?details=1). */
export interface DescribedEntry extends BackupEntry {
  sha256?: string;
  bytes?: number;
  encrypted?: boolean;
  verified?: "head" | "full";
}

/** HEADs in flight at once: under Workers' 6 simultaneous connections. */
export const DESCRIBE_CONCURRENCY = 4;

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

/**
 * Each entry with the sha256, image size and format from its object's metadata (one HEAD
 * each, DESCRIBE_CONCURRENCY at a time; the listing has no user metadata). An object gone
 * between the listing and its HEAD (pruned meanwhile) is left out; a metadata value that is
 * missing or not well formed is omitted, not guessed. `encrypted` comes from the key.
 */
export async function describeBackups(store: BackupStore, entries: readonly BackupEntry[], concurrency = DESCRIBE_CONCURRENCY): Promise<DescribedEntry[]> {
  const out: (DescribedEntry | undefined)[] = new Array(entries.length);
  let next = 0;
  const worker = async () => {
    while (next < entries.length) {
      const i = next++;
      const entry = entries[i]!;
      const head = await store.head(entry.key);
      if (!head) continue;
      const m = head.metadata;
      out[i] = {
        ...entry,
        ...(/^[0-9a-f]{64}$/.test(m.sha256 ?? "") ? { sha256: m.sha256! } : {}),
        ...(/^\d{1,15}$/.test(m.bytes ?? "") ? { bytes: Number(m.bytes) } : {}),
        // The key says it (parseKey accepts exactly .sqlite.gz and .sqlite.gz.age).
        encrypted: entry.file.endsWith(ENCRYPTED_EXTENSION),
      };
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, entries.length)) }, worker));
  return out.filter((e): e is DescribedEntry => e !== undefined);
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
