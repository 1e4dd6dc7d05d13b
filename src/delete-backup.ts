/**
 * Deleting one backup on request (CLI `delete`, API `DELETE /backups/{file}`).
 *
 * Only a key that is exactly one of this name's backups can be deleted: the file name is
 * validated as for links (one segment, this name's pattern) before any store call, and the
 * key is then taken from this name's own listing, so no input can reach another name's
 * backups, the lease, a `.partial` upload or anything else in the bucket. The newest backup
 * needs `force`, so that a mistake cannot leave a database with no backup at all.
 *
 * No lease is taken (src/lock.ts): a delete touches one finished backup and waits for
 * nothing, so it must not fail with BACKUP_RUNNING while a backup runs. What a concurrent
 * run can do to it: retention may delete the same object first — the listing then no longer
 * has it (404 BACKUP_NOT_FOUND) or, if it went between our listing and our DELETE, S3 deletes
 * idempotently and the object is gone either way; a new backup finishing meanwhile only makes
 * ours older, never newer, so the newest-needs-force rule still holds against that listing.
 */
import { assertBackupFile, listBackups, type BackupEntry } from "./catalog.js";
import type { Config } from "./config.js";
import { BackupError } from "./errors.js";
import type { Logger } from "./log.js";
import type { BackupStore } from "./store/store.js";

export interface DeleteOptions {
  /** Allow deleting the newest backup. */
  force?: boolean;
}

export interface DeletedBackup extends BackupEntry {
  name: string;
  /** It was the newest backup of its name (so `force` was given). */
  wasNewest: boolean;
  /** How many backups of this name remain. */
  remaining: number;
}

type Where = Pick<Config, "name"> & { s3: Pick<Config["s3"], "prefix"> };

/**
 * Throws INVALID_BACKUP_FILE (400: not a file name of this name, or "latest"),
 * BACKUP_NOT_FOUND (404), NEWEST_BACKUP (409: the newest without force) or a store error.
 */
export async function deleteBackup(store: BackupStore, where: Where, file: string, options: DeleteOptions, logger: Logger): Promise<DeletedBackup> {
  if (file === "latest") {
    throw new BackupError("INVALID_BACKUP_FILE", `delete takes a backup's file name, not "latest": name the backup you mean (list shows them).`, 400);
  }
  assertBackupFile(where.name, file);
  const backups = await listBackups(store, where);
  const index = backups.findIndex((b) => b.file === file);
  const found = backups[index];
  if (!found) throw new BackupError("BACKUP_NOT_FOUND", `backup ${file} does not exist in ${store.description}.`, 404);
  const wasNewest = index === 0;
  if (wasNewest && !options.force) {
    throw new BackupError(
      "NEWEST_BACKUP",
      `${file} is the newest backup of "${where.name}"${backups.length === 1 ? " and its only one" : ""}; deleting it needs --force (API: ?force=1).`,
      409,
    );
  }
  const result = await store.delete([found.key]);
  const failed = result.failed.find((f) => f.key === found.key);
  if (failed || !result.deleted.includes(found.key)) {
    throw new BackupError("STORE_ERROR", `could not delete ${found.key} from ${store.description}: ${failed?.message ?? "the store did not confirm it"}.`, 502);
  }
  const remaining = backups.length - 1;
  // An audit line: who asked is the access log's (API) or the shell's (CLI) business.
  logger[wasNewest ? "warn" : "info"]("backup deleted", { name: where.name, key: found.key, size: found.size, wasNewest, remaining });
  return { ...found, name: where.name, wasNewest, remaining };
}
