/**
 * One backup run: read → snapshot → gzip → upload → verify → prune.
 * Prune runs only after a verified upload; a failure anywhere before it leaves every
 * earlier backup in place and nothing under the failed run's key.
 */
import type { Config } from "./config.js";
import { gzipImage } from "./compress.js";
import { asBackupError, BackupError } from "./errors.js";
import { backupFolder, createKeyFactory, parseKey, type BackupKey } from "./keys.js";
import { throttle } from "./log.js";
import { planRetention } from "./retention.js";
import type { Runtime } from "./runtime.js";
import { takeSnapshot, type Snapshot } from "./snapshot.js";
import type { Source } from "./sources/source.js";
import type { BackupStore } from "./store/store.js";
import { BACKUP_FORMAT, verifyContent, verifyHead } from "./verify.js";

export interface Manifest {
  key: string;
  file: string;
  name: string;
  bytes: number;
  gzipBytes: number;
  sha256: string;
  pageSize: number;
  pageCount: number;
  sqliteVersion: string;
  /** Reads it took to get a consistent copy of a file source (more than 1: a writer was busy). */
  readAttempts: number;
  /** WAL frames applied onto the main file (file sources in WAL mode), 0 otherwise. */
  walFrames: number;
  startedAt: string;
  durationMs: number;
  verified: Config["verify"];
  pruned: string[];
  /** Set when the backup succeeded but removing old backups did not. */
  pruneError?: string;
  /** Keys of this tool's unfinished multipart uploads, older than STALE_UPLOAD_MS, that were aborted. */
  abortedUploads: string[];
}

export interface BackupDeps {
  config: Pick<Config, "name" | "s3" | "maxCount" | "gzipLevel" | "check" | "verify" | "maxBytes">;
  runtime: Runtime;
  store: BackupStore;
  source: Source;
}

const PROGRESS_INTERVAL_MS = 2000;
/**
 * A failed run aborts its multipart upload; if even that abort fails, the parts stay (and are
 * billed) until a later run aborts them. Only uploads older than this are touched, so that a
 * backup still running elsewhere is never cut off.
 */
export const STALE_UPLOAD_MS = 3 * 60 * 60 * 1000;

export function objectMetadata(s: Snapshot): Record<string, string> {
  return {
    sha256: s.sha256,
    bytes: String(s.bytes.length),
    "page-size": String(s.pageSize),
    "page-count": String(s.pageCount),
    "sqlite-version": s.sqliteVersion,
    format: BACKUP_FORMAT,
  };
}

/** A backup runner; keeps its key factory so keys stay unique across runs in one process. */
export function createBackupRunner(deps: BackupDeps): { run(): Promise<Manifest> } {
  const { config, runtime } = deps;
  const nextKey = createKeyFactory(runtime.random, config.s3.prefix, config.name);
  return { run: () => runBackup(deps, nextKey(runtime.now())) };
}

async function runBackup(deps: BackupDeps, target: BackupKey): Promise<Manifest> {
  const { config, runtime, store, source } = deps;
  const started = runtime.now();
  const elapsed = () => runtime.now().getTime() - started.getTime();
  const log = runtime.logger.child({ name: config.name, key: target.key });
  const clock = () => runtime.now().getTime();
  log.info("backup started", { source: source.origin, store: store.description });

  try {
    const reportRead = throttle<[number, number | undefined]>(PROGRESS_INTERVAL_MS, clock, ([read, total]) =>
      log.info("reading source", { bytesRead: read, totalBytes: total }),
    );
    const image = await source.read({
      maxBytes: config.maxBytes,
      onProgress: (read, total) => reportRead([read, total], read === total),
      onRetry: ({ attempt, attempts, reason, delayMs }) => log.warn("source changed during the read; reading again", { attempt, attempts, reason, delayMs }),
    });
    if (image.wal) {
      const { ignoredBecause, ...wal } = image.wal;
      if (ignoredBecause) log.warn("WAL file ignored, as SQLite ignores it", { reason: ignoredBecause, walBytes: wal.bytes });
      else log.info("WAL applied", wal);
    }

    const snapshot = await takeSnapshot(image, runtime, config.check);
    log.info("image checked", {
      bytes: snapshot.bytes.length,
      pageSize: snapshot.pageSize,
      pageCount: snapshot.pageCount,
      check: config.check,
      sha256: snapshot.sha256,
      ...(snapshot.fromWalMode ? { note: "WAL-mode header marked rollback-journal in the image" } : {}),
    });

    let gzipBytes = 0;
    let uploaded = 0;
    const reportUpload = throttle<void>(PROGRESS_INTERVAL_MS, clock, () =>
      log.info("uploading", { bytes: snapshot.bytes.length, compressedBytes: gzipBytes, uploadedBytes: uploaded }),
    );
    const body = gzipImage(snapshot.bytes, runtime.gzip(config.gzipLevel), (n) => {
      gzipBytes = n;
      reportUpload();
    });
    await store.upload(target.key, body, {
      metadata: objectMetadata(snapshot),
      contentType: "application/gzip",
      contentDisposition: `attachment; filename="${target.file}"`,
      onProgress: (n) => {
        uploaded = n;
        reportUpload();
      },
    });
    log.info("uploaded", { compressedBytes: gzipBytes });

    await verifyUpload(deps, target.key, { sha256: snapshot.sha256, bytes: snapshot.bytes.length, gzipBytes });
    log.info("verified", { verify: config.verify });

    const { pruned, pruneError } = await prune(deps, target.key);
    const abortedUploads = await abortStaleUploads(deps);
    const manifest: Manifest = {
      key: target.key,
      file: target.file,
      name: config.name,
      bytes: snapshot.bytes.length,
      gzipBytes,
      sha256: snapshot.sha256,
      pageSize: snapshot.pageSize,
      pageCount: snapshot.pageCount,
      sqliteVersion: snapshot.sqliteVersion,
      readAttempts: image.attempts ?? 1,
      walFrames: image.wal?.committedFrames ?? 0,
      startedAt: started.toISOString(),
      durationMs: elapsed(),
      verified: config.verify,
      pruned,
      ...(pruneError ? { pruneError } : {}),
      abortedUploads,
    };
    log.info("backup finished", { bytes: manifest.bytes, gzipBytes, durationMs: manifest.durationMs, pruned: pruned.length });
    return manifest;
  } catch (err) {
    const error = asBackupError(err);
    log.error("backup failed", { code: error.code, error: error.message, durationMs: elapsed() });
    throw error;
  }
}

async function verifyUpload(deps: BackupDeps, key: string, expected: { sha256: string; bytes: number; gzipBytes: number }): Promise<void> {
  try {
    await verifyHead(deps.store, key, expected);
    if (deps.config.verify === "full") await verifyContent(deps.store, deps.runtime, key, expected);
  } catch (err) {
    // An object that does not prove itself is not a backup: remove it, so that retention
    // never counts it and nobody restores from it.
    await deps.store.delete([key]).catch(() => undefined);
    if (err instanceof BackupError && err.code === "VERIFY_FAILED") throw err;
    throw new BackupError("VERIFY_FAILED", `verification of ${key} failed: ${asBackupError(err).message}`, 502, { cause: err });
  }
}

async function prune(deps: BackupDeps, newKey: string): Promise<{ pruned: string[]; pruneError?: string }> {
  const { config, store, runtime } = deps;
  try {
    const folder = backupFolder(config.s3.prefix, config.name);
    const objects = await store.list(folder);
    const plan = planRetention({
      prefix: config.s3.prefix,
      name: config.name,
      keys: objects.map((o) => o.key),
      maxCount: config.maxCount,
      protect: newKey,
    });
    if (plan.delete.length === 0) return { pruned: [] };
    const result = await store.delete(plan.delete.map((k) => k.key));
    runtime.logger.info("pruned", { name: config.name, deleted: result.deleted, kept: plan.keep.length, ignored: plan.ignored.length });
    if (result.failed.length) {
      const pruneError = `could not delete ${result.failed.length} old backup(s): ${result.failed.map((f) => `${f.key} (${f.message})`).join(", ")}`;
      runtime.logger.error("prune incomplete", { name: config.name, error: pruneError });
      return { pruned: result.deleted, pruneError };
    }
    return { pruned: result.deleted };
  } catch (err) {
    const pruneError = asBackupError(err).message;
    runtime.logger.error("prune failed; the new backup is kept", { name: config.name, error: pruneError });
    return { pruned: [], pruneError };
  }
}

/** Abort this name's multipart uploads left by failed runs (best effort: never fails the backup). */
async function abortStaleUploads(deps: BackupDeps): Promise<string[]> {
  const { config, store, runtime } = deps;
  const cutoff = runtime.now().getTime() - STALE_UPLOAD_MS;
  const aborted: string[] = [];
  try {
    const uploads = await store.listUploads(backupFolder(config.s3.prefix, config.name));
    // Only keys this tool writes for this name, and only old ones.
    for (const u of uploads.filter((x) => parseKey(config.s3.prefix, config.name, x.key) && x.initiated.getTime() < cutoff)) {
      await store.abortUpload(u);
      aborted.push(u.key);
    }
    if (aborted.length) runtime.logger.warn("aborted stale multipart uploads of earlier failed runs", { name: config.name, keys: aborted });
  } catch (err) {
    runtime.logger.error("could not abort stale multipart uploads; a later run will try again", { name: config.name, error: asBackupError(err).message, aborted });
  }
  return aborted;
}
