/**
 * Everything known about one stored backup without downloading it: its key and times, the
 * object's size and type, and what its metadata says of the image inside (sha256, size, page
 * size and count, SQLite version, format). One LIST (for `latest` and whether it is the
 * newest) and one HEAD.
 *
 * "Verified" is not a fact stored in the bucket: nothing is written after a run verifies its
 * upload (object metadata is fixed when the upload starts, and a marker object would outlive
 * retention). What can honestly be said without reading the content is:
 *   - `at-backup`: the metadata is this tool's. A run deletes an upload that fails its
 *     verification (VERIFY=head: size and metadata by HEAD; full: the content read back), so a
 *     backup under its key passed the run's verification — unless that deletion failed too, or
 *     something else wrote the object. Which VERIFY level ran is not recorded.
 *   - `no`: the metadata is missing or not this tool's (`problems` says what); `verify` and
 *     `restore` would refuse it.
 *   - `now`: `verify` ran on it just now (the CLI's `info --verify`) and passed.
 */
import { assertBackupFile, listBackups } from "./catalog.js";
import { BackupError } from "./errors.js";
import { parseKey } from "./keys.js";
import type { BackupStore } from "./store/store.js";
import { backupMetadata, type VerifyReport } from "./verify.js";
import type { Config } from "./config.js";

export type Verified = "at-backup" | "no" | "now";

export interface BackupInfo {
  name: string;
  key: string;
  file: string;
  /** When the run that made it started (the time in its key), ISO 8601. */
  createdAt: string;
  /** When the store finished receiving it (LastModified), ISO 8601. */
  lastModified: string;
  /** Whether it is the newest backup of its name (deleting it then needs --force / ?force=1). */
  newest: boolean;
  /** Size of the stored object: the gzip, or its age file. */
  storedBytes: number;
  contentType: string | null;
  /** From the object's metadata (null when absent or invalid; see `problems`). */
  bytes: number | null;
  sha256: string | null;
  pageSize: number | null;
  pageCount: number | null;
  sqliteVersion: string | null;
  format: string | null;
  /** age-encrypted: the key ends in .sqlite.gz.age. */
  encrypted: boolean;
  verified: Verified;
  /** With verified "no": why the metadata is not that of a backup this tool made. */
  problems?: string[];
  /** With verified "now": the report of the verify that just ran. */
  verification?: VerifyReport;
}

type Where = Pick<Config, "name" | "maxBytes"> & { s3: Pick<Config["s3"], "prefix"> };

const positiveInt = (v: string | undefined): number | null => (v !== undefined && /^\d{1,16}$/.test(v) && Number(v) > 0 ? Number(v) : null);

/** `which` = "latest" or a file name, validated before any store call (INVALID_BACKUP_FILE, BACKUP_NOT_FOUND). */
export async function describeBackup(store: BackupStore, where: Where, which: string): Promise<BackupInfo> {
  if (which !== "latest") assertBackupFile(where.name, which);
  const backups = await listBackups(store, where);
  const found = which === "latest" ? backups[0] : backups.find((b) => b.file === which);
  if (!found) {
    throw which === "latest"
      ? new BackupError("BACKUP_NOT_FOUND", `there are no backups of "${where.name}" in ${store.description} yet.`, 404)
      : new BackupError("BACKUP_NOT_FOUND", `backup ${which} does not exist in ${store.description}.`, 404);
  }
  const head = await store.head(found.key);
  // Listed a moment ago, gone now: retention or a delete got there first.
  if (!head) throw new BackupError("BACKUP_NOT_FOUND", `backup ${found.file} does not exist in ${store.description} (it was removed just now).`, 404);
  const parsed = parseKey(where.s3.prefix, where.name, found.key)!;
  const m = head.metadata;
  let problems: string[] | undefined;
  try {
    backupMetadata(head, where.maxBytes);
  } catch (err) {
    problems = [err instanceof Error ? err.message : String(err)];
  }
  const sha256 = m.sha256?.toLowerCase();
  return {
    name: where.name,
    key: found.key,
    file: found.file,
    createdAt: parsed.time.toISOString(),
    lastModified: head.lastModified.toISOString(),
    newest: backups[0]?.key === found.key,
    storedBytes: head.size,
    contentType: head.contentType ?? null,
    bytes: positiveInt(m.bytes),
    sha256: sha256 && /^[0-9a-f]{64}$/.test(sha256) ? sha256 : null,
    pageSize: positiveInt(m["page-size"]),
    pageCount: positiveInt(m["page-count"]),
    sqliteVersion: m["sqlite-version"] ?? null,
    format: m.format ?? null,
    encrypted: parsed.encrypted,
    verified: problems ? "no" : "at-backup",
    ...(problems ? { problems } : {}),
  };
}

/** The info after a verify of the same object passed: the content's own facts replace the metadata's claims. */
export function withVerification(info: BackupInfo, report: VerifyReport): BackupInfo {
  const { problems: _problems, ...rest } = info;
  return { ...rest, bytes: report.bytes, sha256: report.sha256, pageSize: report.pageSize, pageCount: report.pageCount, verified: "now", verification: report };
}
