/**
 * One backup run: read → snapshot → gzip → upload → verify → prune.
 * Prune runs only after a verified upload; a failure anywhere before it leaves every
 * earlier backup in place and nothing under the failed run's key.
 */
import type { Config } from "./config.js";
import { countBytes, endAfter, gzipImage } from "./compress.js";
import { listBackups } from "./catalog.js";
import { encryptStream, type Decryption } from "./encrypt.js";
import { asBackupError, BackupError } from "./errors.js";
import { backupFolder, createKeyFactory, parseKey, type BackupKey } from "./keys.js";
import { throttle } from "./log.js";
import { keptByRule, planRetention } from "./retention.js";
import type { Runtime } from "./runtime.js";
import { takeSnapshot, type Snapshot } from "./snapshot.js";
import type { Source, SourceImage } from "./sources/source.js";
import type { BackupStore } from "./store/store.js";
import { BACKUP_FORMAT, ENCRYPTED_BACKUP_FORMAT, verifyContent, verifyHead, type Expected } from "./verify.js";

export interface Manifest {
  key: string;
  file: string;
  name: string;
  bytes: number;
  gzipBytes: number;
  /** Encrypted with age to AGE_RECIPIENTS (the key ends in .sqlite.gz.age). */
  encrypted: boolean;
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
  /**
   * SKIP_UNCHANGED found the image identical to the newest backup: nothing was uploaded or
   * pruned, and `key`/`file`/`gzipBytes` are that existing backup's.
   */
  unchanged?: true;
}

export interface RunOptions {
  /** False once the cross-instance lease was lost mid-run: then nothing is pruned. */
  leaseHeld?: () => boolean;
}

export interface BackupDeps {
  config: Pick<Config, "name" | "s3" | "maxCount" | "keep" | "skipUnchanged" | "gzipLevel" | "check" | "verify" | "maxBytes" | "ageRecipients">;
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

/** sha256 and bytes describe the plain image, encrypted or not. */
export function objectMetadata(s: Snapshot, encrypted = false): Record<string, string> {
  return {
    sha256: s.sha256,
    bytes: String(s.bytes.length),
    "page-size": String(s.pageSize),
    "page-count": String(s.pageCount),
    "sqlite-version": s.sqliteVersion,
    format: encrypted ? ENCRYPTED_BACKUP_FORMAT : BACKUP_FORMAT,
  };
}

/** A backup runner; keeps its key factory so keys stay unique across runs in one process. */
export function createBackupRunner(deps: BackupDeps): { run(options?: RunOptions): Promise<Manifest> } {
  const { config, runtime } = deps;
  const nextKey = createKeyFactory(runtime.random, config.s3.prefix, config.name, Boolean(config.ageRecipients?.length));
  return { run: (options = {}) => runBackup(deps, nextKey(runtime.now()), options) };
}

async function runBackup(deps: BackupDeps, target: BackupKey, options: RunOptions): Promise<Manifest> {
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
    const described = {
      bytes: snapshot.bytes.length,
      pageSize: snapshot.pageSize,
      pageCount: snapshot.pageCount,
      check: config.check,
      sha256: snapshot.sha256,
      ...(snapshot.fromWalMode ? { note: "WAL-mode header marked rollback-journal in the image" } : {}),
    };
    // Checked on another thread (Node), the image is compressed and uploaded meanwhile; the
    // upload's end waits for the verdict, and a failed check aborts it (endAfter below).
    const checked = snapshot.checked.then((info) => log.info("image checked", { ...described, tables: info.tables }));
    checked.catch(() => undefined);
    if (snapshot.inBackground) log.info("image read; checking it beside the upload", described);
    else await checked;

    const metadata = objectMetadata(snapshot, target.encrypted);
    if (config.skipUnchanged) {
      // A corrupt image must fail the run, not pass as unchanged.
      await checked;
      const same = await newestIfSame(deps, metadata);
      if (same) {
        log.info("unchanged since the newest backup: nothing uploaded, nothing pruned", { newest: same.key, sha256: snapshot.sha256 });
        return {
          ...manifestOf(snapshot, image),
          key: same.key,
          file: same.file,
          name: config.name,
          gzipBytes: same.size,
          encrypted: target.encrypted, // the format matched
          startedAt: started.toISOString(),
          durationMs: elapsed(),
          verified: config.verify,
          pruned: [],
          abortedUploads: [],
          unchanged: true,
        };
      }
    }

    let gzipBytes = 0;
    let storedBytes = 0;
    let uploaded = 0;
    const reportUpload = throttle<void>(PROGRESS_INTERVAL_MS, clock, () =>
      log.info("uploading", { bytes: snapshot.bytes.length, compressedBytes: gzipBytes, uploadedBytes: uploaded }),
    );
    const gzip = gzipImage(snapshot.bytes, runtime.gzip(config.gzipLevel), (n) => {
      gzipBytes = n;
      reportUpload();
    });
    // Encrypted: gzip → age (64 KiB chunks, as they come) → upload. The run's file key stays
    // in memory so that VERIFY=full can open the upload without any identity.
    const sealed = target.encrypted ? await encryptStream(gzip, config.ageRecipients!) : undefined;
    const body = (sealed?.stream ?? gzip).pipeThrough(countBytes((n) => (storedBytes = n))).pipeThrough(endAfter(checked));
    try {
      await store.upload(target.key, body, {
        metadata,
        // Not application/gzip: browsers and download tools must not gunzip what is not gzip.
        contentType: target.encrypted ? "application/octet-stream" : "application/gzip",
        contentDisposition: `attachment; filename="${target.file}"`,
        onProgress: (n) => {
          uploaded = n;
          reportUpload();
        },
      });
    } catch (err) {
      // A failed check is why the upload was aborted: report the check's error, not the upload's.
      await checked;
      throw err;
    }
    log.info("uploaded", { compressedBytes: gzipBytes, ...(sealed ? { encryptedBytes: storedBytes } : {}) });

    await verifyUpload(
      deps,
      target.key,
      { sha256: snapshot.sha256, bytes: snapshot.bytes.length, storedBytes, format: metadata.format! },
      sealed ? { fileKey: sealed.fileKey, recipients: config.ageRecipients!.length } : undefined,
    );
    log.info("verified", { verify: config.verify });

    const leaseLost = options.leaseHeld && !options.leaseHeld();
    const { pruned, pruneError } = leaseLost
      ? { pruned: [], pruneError: "not pruned: the cross-instance lease was lost during the run (another instance may be pruning)" }
      : await prune(deps, target.key);
    const abortedUploads = await abortStaleUploads(deps);
    const manifest: Manifest = {
      ...manifestOf(snapshot, image),
      key: target.key,
      file: target.file,
      name: config.name,
      gzipBytes,
      encrypted: target.encrypted,
      startedAt: started.toISOString(),
      durationMs: elapsed(),
      verified: config.verify,
      pruned,
      ...(pruneError ? { pruneError } : {}),
      abortedUploads,
    };
    const wasmMemoryBytes = runtime.wasmMemoryBytes?.();
    log.info("backup finished", { bytes: manifest.bytes, gzipBytes, durationMs: manifest.durationMs, pruned: pruned.length, ...(wasmMemoryBytes ? { wasmMemoryBytes } : {}) });
    return manifest;
  } catch (err) {
    const error = asBackupError(err);
    log.error("backup failed", { code: error.code, error: error.message, durationMs: elapsed() });
    throw error;
  }
}

function manifestOf(snapshot: Snapshot, image: SourceImage) {
  return {
    bytes: snapshot.bytes.length,
    sha256: snapshot.sha256,
    pageSize: snapshot.pageSize,
    pageCount: snapshot.pageCount,
    sqliteVersion: snapshot.sqliteVersion,
    readAttempts: image.attempts ?? 1,
    walFrames: image.wal?.committedFrames ?? 0,
  };
}

/**
 * The newest backup, if it holds exactly this image in this format (same sha256 of the
 * plain image, same format, e.g. both encrypted). A store error here fails the run like any
 * other: skipping must never hide a store that cannot be reached.
 */
async function newestIfSame(deps: BackupDeps, metadata: Record<string, string>): Promise<{ key: string; file: string; size: number } | undefined> {
  const [newest] = await listBackups(deps.store, deps.config);
  if (!newest) return undefined;
  const head = await deps.store.head(newest.key);
  if (!head || head.metadata.sha256 !== metadata.sha256 || head.metadata.format !== metadata.format) return undefined;
  return { key: newest.key, file: newest.file, size: head.size };
}

async function verifyUpload(deps: BackupDeps, key: string, expected: Expected, decryption: Decryption | undefined): Promise<void> {
  try {
    await verifyHead(deps.store, key, expected);
    if (deps.config.verify === "full") await verifyContent(deps.store, deps.runtime, key, expected, decryption);
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
      keep: config.keep,
      protect: newKey,
    });
    if (plan.delete.length === 0) return { pruned: [] };
    const result = await store.delete(plan.delete.map((k) => k.key));
    runtime.logger.info("pruned", { name: config.name, deleted: result.deleted, kept: plan.keep.length, keptBy: keptByRule(plan), ignored: plan.ignored.length });
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
