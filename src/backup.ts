/**
 * One backup run: read → snapshot → gzip → upload → verify → prune.
 * Prune runs only after a verified upload; a failure anywhere before it leaves every
 * earlier backup in place and nothing under the failed run's key.
 */
import { IN_MEMORY_MAX_BYTES, type CheckMode, type Config } from "./config.js";
import { countBytes, endAfter, gzipImage, through } from "./compress.js";
import { listBackups } from "./catalog.js";
import { encryptStream, type Decryption } from "./encrypt.js";
import { asBackupError, BackupError } from "./errors.js";
import { backupFolder, createKeyFactory, parseKey, type BackupKey } from "./keys.js";
import { PROGRESS_INTERVAL_MS, throttle } from "./log.js";
import { keptByRule, planRetention } from "./retention.js";
import type { Runtime } from "./runtime.js";
import { takeSnapshot, type Snapshot } from "./snapshot.js";
import { inspectImage, type StreamFacts } from "./inspect-stream.js";
import { sqliteVersionOf } from "./sqlite/check.js";
import { keptChanging, retryDelayMs } from "./sources/file.js";
import { SourceChanged, type Source, type SourceImage, type SourceStream } from "./sources/source.js";
import type { BackupStore } from "./store/store.js";
import type { RunProgress } from "./runs.js";
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
  /** d1:// sources: the bookmark of the D1 export the image was built from (metadata `d1-bookmark`). */
  d1Bookmark?: string;
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
  /**
   * The run's phase and bytes, as they change (per chunk: keep it cheap). For the status
   * page; the log lines say the same every PROGRESS_INTERVAL_MS.
   */
  onProgress?: (progress: RunProgress) => void;
}

export interface BackupDeps {
  config: Pick<Config, "name" | "s3" | "maxCount" | "keep" | "skipUnchanged" | "gzipLevel" | "check" | "verify" | "maxBytes" | "ageRecipients"> & {
    /** READ_ATTEMPTS: streamed reads of a source that changed under the read, before giving up. */
    readAttempts?: number;
  };
  /** Waits between streamed read attempts; tests pass a fake. */
  sleep?: (ms: number) => Promise<void>;
  runtime: Runtime;
  store: BackupStore;
  source: Source;
}

/**
 * A failed run aborts its multipart upload; if even that abort fails, the parts stay (and are
 * billed) until a later run aborts them. Only uploads older than this are touched, so that a
 * backup still running elsewhere is never cut off.
 */
export const STALE_UPLOAD_MS = 3 * 60 * 60 * 1000;

/** Object metadata of a backup from a d1:// source: the D1 export's bookmark (added in 2026-12; older backups lack it). */
export const D1_BOOKMARK_METADATA = "d1-bookmark";

/** sha256 and bytes describe the plain image, encrypted or not. */
export function objectMetadata(s: Snapshot, encrypted = false, d1Bookmark?: string): Record<string, string> {
  return {
    ...(d1Bookmark ? { [D1_BOOKMARK_METADATA]: d1Bookmark } : {}),
    sha256: s.sha256,
    bytes: String(s.bytes.length),
    "page-size": String(s.pageSize),
    "page-count": String(s.pageCount),
    "sqlite-version": s.sqliteVersion,
    format: encrypted ? ENCRYPTED_BACKUP_FORMAT : BACKUP_FORMAT,
  };
}

/** The same metadata for a streamed image, known only once its last byte has passed. */
export function streamedMetadata(f: StreamFacts, sqliteVersion: string, encrypted: boolean): Record<string, string> {
  return {
    ...(f.d1Bookmark ? { [D1_BOOKMARK_METADATA]: f.d1Bookmark } : {}),
    sha256: f.sha256,
    bytes: String(f.bytes),
    "page-size": String(f.pageSize),
    "page-count": String(f.pageCount),
    "sqlite-version": sqliteVersion,
    format: encrypted ? ENCRYPTED_BACKUP_FORMAT : BACKUP_FORMAT,
  };
}

/**
 * A streamed backup is uploaded here first and copied to its key with its final metadata
 * (the sha256 is known only at the end); the key never holds anything but a finished
 * backup. Not a backup key (parseKey rejects it), so retention never counts it; a run that
 * died between upload and copy leaves one, removed by a later run (abortStaleUploads).
 */
export const PARTIAL_SUFFIX = ".partial";

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
    const check = await chooseCheck(deps);
    if (check.mode === "structure" || check.mode === "none") return await streamedBackup(deps, target, options, check.mode, started, log);
    return await inMemoryBackup(deps, target, options, check.mode, started, log);
  } catch (err) {
    const error = asBackupError(err);
    log.error("backup failed", { code: error.code, error: error.message, durationMs: elapsed() });
    throw error;
  }
}

/**
 * CHECK → how this run checks: SQLite's own checks need the image in memory, the structural
 * check (and none) stream it. `auto` takes quick_check when the source's size is known up
 * front (a file) and fits Runtime.quickCheckMaxBytes, else streams with the structural check.
 */
async function chooseCheck(deps: BackupDeps): Promise<{ mode: CheckMode }> {
  const setting = deps.config.check;
  if (setting !== "auto") return { mode: setting };
  const size = await deps.source.size?.();
  return { mode: size !== undefined && size <= deps.runtime.quickCheckMaxBytes ? "quick" : "structure" };
}

type Log = ReturnType<BackupDeps["runtime"]["logger"]["child"]>;

async function inMemoryBackup(deps: BackupDeps, target: BackupKey, options: RunOptions, check: CheckMode, started: Date, log: Log, opened?: SourceImage): Promise<Manifest> {
  const { config, runtime, store, source } = deps;
  const elapsed = () => runtime.now().getTime() - started.getTime();
  const clock = () => runtime.now().getTime();
  const progress = options.onProgress ?? (() => undefined);
  {
    const reportRead = throttle<[number, number | undefined]>(PROGRESS_INTERVAL_MS, clock, ([read, total]) =>
      log.info("reading source", { bytesRead: read, totalBytes: total }),
    );
    const image = opened ?? await source.read({
      // SQLite's own checks hold the image in one buffer.
      maxBytes: Math.min(config.maxBytes, IN_MEMORY_MAX_BYTES),
      onProgress: (read, total) => {
        progress({ phase: "reading", bytesDone: read, ...(total !== undefined ? { bytesTotal: total } : {}) });
        reportRead([read, total], read === total);
      },
      onRetry: ({ attempt, attempts, reason, delayMs }) => log.warn("source changed during the read; reading again", { attempt, attempts, reason, delayMs }),
    });
    if (image.wal) {
      const { ignoredBecause, ...wal } = image.wal;
      if (ignoredBecause) log.warn("WAL file ignored, as SQLite ignores it", { reason: ignoredBecause, walBytes: wal.bytes });
      else log.info("WAL applied", wal);
    }

    progress({ phase: "checking", bytesTotal: image.bytes.length });
    const snapshot = await takeSnapshot(image, runtime, check);
    const described = {
      bytes: snapshot.bytes.length,
      pageSize: snapshot.pageSize,
      pageCount: snapshot.pageCount,
      check,
      sha256: snapshot.sha256,
      ...(snapshot.fromWalMode ? { note: "WAL-mode header marked rollback-journal in the image" } : {}),
    };
    // Checked on another thread (Node), the image is compressed and uploaded meanwhile; the
    // upload's end waits for the verdict, and a failed check aborts it (endAfter below).
    const checked = snapshot.checked.then((info) => log.info("image checked", { ...described, tables: info.tables }));
    checked.catch(() => undefined);
    if (snapshot.inBackground) log.info("image read; checking it beside the upload", described);
    else await checked;

    const metadata = objectMetadata(snapshot, target.encrypted, image.d1Bookmark);
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
    progress({ phase: "uploading", bytesTotal: snapshot.bytes.length, uploadedBytes: 0 });
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
          progress({ phase: "uploading", bytesTotal: snapshot.bytes.length, uploadedBytes: n });
          reportUpload();
        },
      });
    } catch (err) {
      // A failed check is why the upload was aborted: report the check's error, not the upload's.
      await checked;
      throw err;
    }
    log.info("uploaded", { compressedBytes: gzipBytes, ...(sealed ? { encryptedBytes: storedBytes } : {}) });

    progress({ phase: "verifying" });
    await verifyUpload(
      deps,
      target.key,
      { sha256: snapshot.sha256, bytes: snapshot.bytes.length, storedBytes, format: metadata.format! },
      sealed ? { fileKey: sealed.fileKey, recipients: config.ageRecipients!.length } : undefined,
    );
    log.info("verified", { verify: config.verify });

    return finish(deps, target, options, started, log, { ...manifestOf(snapshot, image), gzipBytes });
  }
}

/**
 * The streamed pipeline: source → hash + structural check → gzip → (age) → multipart upload
 * to `<key>.partial`, with backpressure from the upload back to the source, so memory is the
 * parts and compression blocks in flight, never the database. The image's stream ends only
 * after its verdict (src/inspect-stream.ts): a damaged image, a wrong length or a source
 * that changed under the read aborts the upload. A finished upload is copied to its key with
 * the final metadata (sha256 included), then verified like any backup.
 */
async function streamedBackup(deps: BackupDeps, target: BackupKey, options: RunOptions, check: Extract<CheckMode, "structure" | "none">, started: Date, log: Log): Promise<Manifest> {
  const { config, runtime, store, source } = deps;
  const elapsed = () => runtime.now().getTime() - started.getTime();
  const clock = () => runtime.now().getTime();
  const attempts = Math.max(1, config.readAttempts ?? 5);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const partialKey = target.key + PARTIAL_SUFFIX;
  const contentType = target.encrypted ? "application/octet-stream" : "application/gzip";
  const contentDisposition = `attachment; filename="${target.file}"`;
  const progress = options.onProgress ?? (() => undefined);

  // A file costs only a local read to look at twice: read it once to hash it, and the upload
  // can then go straight to its key with its final metadata (no server-side copy), and an
  // unchanged database (SKIP_UNCHANGED) uploads nothing. The upload's own read is checked and
  // must give the same sha256, or it is aborted and the run goes on as for any other source.
  // The check runs in the second read, beside gzip, where a core is free: in the first it
  // cost 18 % of a 1 GiB backup's wall time on 2 cores (bench, peer comparison).
  let lookChanged = false;
  let looked = source.size ? await lookFirst() : undefined;
  if (looked && config.skipUnchanged) {
    const unchanged = await unchangedManifest(looked);
    if (unchanged) return unchanged;
  }

  let attempt = lookChanged ? 2 : 1;
  let facts: StreamFacts;
  let gzipBytes = 0;
  let storedBytes = 0;
  let sealed: Awaited<ReturnType<typeof encryptStream>> | undefined;
  for (;; attempt++) {
    let opened: SourceStream;
    try {
      opened = await source.open({ maxBytes: config.maxBytes });
    } catch (err) {
      if (err instanceof SourceChanged && attempt < attempts) {
        await retryAfter(err, attempt);
        continue;
      }
      throw err instanceof SourceChanged ? keptChanging(source.origin, err, attempts, elapsed()) : err;
    }
    if (config.check === "auto" && opened.bytes !== undefined && opened.bytes <= runtime.quickCheckMaxBytes && !source.size) {
      // Small enough for SQLite's own check, and known only now (Content-Length).
      const image = await collect(opened, source.origin, config.maxBytes, (n) => progress({ phase: "reading", bytesDone: n, bytesTotal: opened.bytes! }));
      return inMemoryBackup(deps, target, options, "quick", started, log, image);
    }
    log.info("streaming the image", { check, ...(opened.bytes !== undefined ? { bytes: opened.bytes } : {}), attempt });
    let read = 0;
    let uploaded = 0;
    const report = throttle<void>(PROGRESS_INTERVAL_MS, clock, () =>
      log.info("streaming", { bytesRead: read, totalBytes: opened.bytes, compressedBytes: gzipBytes, uploadedBytes: uploaded }),
    );
    // Straight to the key when the image was checked already: this read only has to be the same bytes.
    const direct = looked;
    const inspected = inspectImage(opened.stream, {
      check,
      origin: source.origin,
      maxBytes: config.maxBytes,
      sha256: runtime.sha256(),
      settled: opened.settled,
      ...(direct ? { expectSha256: direct.sha256 } : {}),
      onProgress: (n) => {
        read = n;
        progress({ phase: "uploading", bytesDone: n, ...(opened.bytes !== undefined ? { bytesTotal: opened.bytes } : {}), uploadedBytes: uploaded });
        report();
      },
    });
    gzipBytes = 0;
    // through(), not pipeThrough: the source's chunks are small and many (4 KiB in workerd).
    const gzip = through(through(inspected.stream, runtime.gzip(config.gzipLevel)), countBytes((n) => (gzipBytes = n)));
    sealed = target.encrypted ? await encryptStream(gzip, config.ageRecipients!) : undefined;
    const body = through(sealed?.stream ?? gzip, countBytes((n) => (storedBytes = n)));
    try {
      await store.upload(direct ? target.key : partialKey, body, {
        metadata: direct ? streamedMetadata(direct, sqliteVersionOf(runtime.sqlite), target.encrypted) : { format: target.encrypted ? ENCRYPTED_BACKUP_FORMAT : BACKUP_FORMAT },
        contentType,
        contentDisposition,
        onProgress: (n) => {
          uploaded = n;
          progress({ phase: "uploading", bytesDone: read, ...(opened.bytes !== undefined ? { bytesTotal: opened.bytes } : {}), uploadedBytes: n });
          report();
        },
      });
      facts = await inspected.facts;
      break;
    } catch (err) {
      // The image's own failure (damaged, changed, too large) is why the upload stopped: report it.
      const cause = await inspected.facts.then(() => err, (e: unknown) => e);
      // Changed since it was checked: from now on, check and upload in one read, as for any source.
      if (direct && cause instanceof SourceChanged) looked = undefined;
      if (cause instanceof SourceChanged && attempt < attempts) {
        await retryAfter(cause, attempt);
        continue;
      }
      throw cause instanceof SourceChanged ? keptChanging(source.origin, cause, attempts, elapsed()) : cause;
    }
  }
  log.info("image checked", { bytes: facts.bytes, pageSize: facts.pageSize, pageCount: facts.pageCount, check, ...(facts.tables !== undefined ? { tables: facts.tables } : {}), sha256: facts.sha256, compressedBytes: gzipBytes, ...(facts.fromWalMode ? { note: "WAL-mode header marked rollback-journal in the image" } : {}) });
  if (!facts.checkComplete) {
    log.warn("the structural check could not read every schema row in one pass (an overflow page came before its row): trees it declares and unused pages were not checked", { check });
  }
  if (facts.wal) {
    const { ignoredBecause, ...wal } = facts.wal;
    if (ignoredBecause) log.warn("WAL file ignored, as SQLite ignores it", { reason: ignoredBecause, walBytes: wal.bytes });
    else log.info("WAL applied", wal);
  }

  const metadata = streamedMetadata(facts, sqliteVersionOf(runtime.sqlite), target.encrypted);
  const described = { bytes: facts.bytes, sha256: facts.sha256, pageSize: facts.pageSize, pageCount: facts.pageCount, sqliteVersion: metadata["sqlite-version"]!, readAttempts: attempt, walFrames: facts.wal?.committedFrames ?? 0, ...(facts.d1Bookmark ? { d1Bookmark: facts.d1Bookmark } : {}) };
  const wentStraight = looked !== undefined;
  if (config.skipUnchanged && !wentStraight) {
    const same = await newestIfSame(deps, metadata);
    if (same) {
      await store.delete([partialKey]);
      log.info("unchanged since the newest backup: nothing kept, nothing pruned", { newest: same.key, sha256: facts.sha256 });
      return { ...described, key: same.key, file: same.file, name: config.name, gzipBytes: same.size, encrypted: target.encrypted, startedAt: started.toISOString(), durationMs: elapsed(), verified: config.verify, pruned: [], abortedUploads: [], unchanged: true };
    }
  }
  if (!wentStraight) {
    try {
      await store.copy(partialKey, target.key, storedBytes, { metadata, contentType, contentDisposition });
    } catch (err) {
      // Whatever the copy left is not a backup.
      await store.delete([target.key, partialKey]).catch(() => undefined);
      throw new BackupError("UPLOAD_FAILED", `${target.key}: the upload finished but giving it its metadata failed: ${asBackupError(err).message}`, 502, { cause: err });
    }
    await store.delete([partialKey]).catch(() => undefined);
  }
  log.info("uploaded", { compressedBytes: gzipBytes, ...(sealed ? { encryptedBytes: storedBytes } : {}) });

  progress({ phase: "verifying" });
  await verifyUpload(
    deps,
    target.key,
    { sha256: facts.sha256, bytes: facts.bytes, storedBytes, format: metadata.format! },
    sealed ? { fileKey: sealed.fileKey, recipients: config.ageRecipients!.length } : undefined,
  );
  log.info("verified", { verify: config.verify });
  return finish(deps, target, options, started, log, { ...described, gzipBytes });

  /** The image's facts (sha256, size, header) from a read that only hashes it; undefined if it changed under the read. */
  async function lookFirst(): Promise<StreamFacts | undefined> {
    try {
      const opened = await source.open({ maxBytes: config.maxBytes });
      const report = throttle<number>(PROGRESS_INTERVAL_MS, clock, (n) => log.info("hashing", { bytesRead: n, totalBytes: opened.bytes }));
      const onProgress = (n: number) => {
        progress({ phase: "hashing", bytesDone: n, ...(opened.bytes !== undefined ? { bytesTotal: opened.bytes } : {}) });
        report(n);
      };
      const inspected = inspectImage(opened.stream, { check: "none", origin: source.origin, maxBytes: config.maxBytes, sha256: runtime.sha256(), settled: opened.settled, onProgress });
      const reader = inspected.stream.getReader();
      const drained = (async () => {
        while (!(await reader.read()).done);
      })();
      const [facts] = await Promise.all([inspected.facts, drained]);
      log.info("image read and hashed; uploading it", { bytes: facts.bytes, sha256: facts.sha256 });
      return facts;
    } catch (err) {
      // Changed under the read: the pipeline below reads it again (and retries). Anything else is the run's error.
      if (!(err instanceof SourceChanged)) throw err;
      if (attempts <= 1) throw keptChanging(source.origin, err, attempts, elapsed());
      lookChanged = true;
      await retryAfter(err, 1);
      return undefined;
    }
  }

  /** The manifest of a run that found the image equal to the newest backup, without uploading; else undefined. */
  async function unchangedManifest(looked: StreamFacts): Promise<Manifest | undefined> {
    const metadata = streamedMetadata(looked, sqliteVersionOf(runtime.sqlite), target.encrypted);
    const same = await newestIfSame(deps, metadata);
    if (!same) return undefined;
    // Not checked again: the backup it equals was checked when it was made.
    log.info("unchanged since the newest backup: nothing uploaded, nothing pruned", { newest: same.key, sha256: looked.sha256 });
    return {
      bytes: looked.bytes,
      sha256: looked.sha256,
      pageSize: looked.pageSize,
      pageCount: looked.pageCount,
      sqliteVersion: metadata["sqlite-version"]!,
      readAttempts: 1,
      walFrames: looked.wal?.committedFrames ?? 0,
      key: same.key,
      file: same.file,
      name: config.name,
      gzipBytes: same.size,
      encrypted: target.encrypted,
      startedAt: started.toISOString(),
      durationMs: elapsed(),
      verified: config.verify,
      pruned: [],
      abortedUploads: [],
      unchanged: true,
    };
  }

  async function retryAfter(err: SourceChanged, attempt: number): Promise<void> {
    const delayMs = retryDelayMs(attempt, runtime.random);
    log.warn("source changed during the read; reading again", { attempt, attempts, reason: err.reason, delayMs });
    await sleep(delayMs);
  }
}

/** Prune, clean up, and the manifest: the end of every run that stored a new backup. */
async function finish(
  deps: BackupDeps,
  target: BackupKey,
  options: RunOptions,
  started: Date,
  log: Log,
  described: Pick<Manifest, "bytes" | "sha256" | "pageSize" | "pageCount" | "sqliteVersion" | "readAttempts" | "walFrames" | "gzipBytes" | "d1Bookmark">,
): Promise<Manifest> {
  const { config, runtime } = deps;
  options.onProgress?.({ phase: "pruning" });
  const leaseLost = options.leaseHeld && !options.leaseHeld();
  const { pruned, pruneError } = leaseLost
    ? { pruned: [], pruneError: "not pruned: the cross-instance lease was lost during the run (another instance may be pruning)" }
    : await prune(deps, target.key);
  const abortedUploads = await abortStaleUploads(deps);
  const manifest: Manifest = {
    ...described,
    key: target.key,
    file: target.file,
    name: config.name,
    encrypted: target.encrypted,
    startedAt: started.toISOString(),
    durationMs: runtime.now().getTime() - started.getTime(),
    verified: config.verify,
    pruned,
    ...(pruneError ? { pruneError } : {}),
    abortedUploads,
  };
  const wasmMemoryBytes = runtime.wasmMemoryBytes?.();
  log.info("backup finished", { bytes: manifest.bytes, gzipBytes: manifest.gzipBytes, durationMs: manifest.durationMs, pruned: pruned.length, ...(wasmMemoryBytes ? { wasmMemoryBytes } : {}) });
  return manifest;
}

/** A stream of known, small size, into memory (CHECK=auto's quick_check for sources whose size only the response tells). */
async function collect(opened: SourceStream, origin: string, maxBytes: number, onRead: (bytes: number) => void): Promise<SourceImage> {
  if (opened.image) {
    await opened.stream.cancel().catch(() => undefined);
    onRead(opened.image.bytes.length);
    return opened.image;
  }
  const bytes = new Uint8Array(opened.bytes!);
  let at = 0;
  const reader = opened.stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.byteLength > bytes.length) throw new BackupError("SOURCE_UNREADABLE", `${origin} sent more bytes than announced.`, 502);
    bytes.set(value, at);
    at += value.byteLength;
    if (at > maxBytes) throw new BackupError("SOURCE_TOO_LARGE", `${origin} is more than MAX_BYTES (${maxBytes}) bytes.`, 413);
    onRead(at);
  }
  const { wal, d1Bookmark } = await opened.settled();
  return { bytes: bytes.subarray(0, at), origin, ...(wal ? { wal } : {}), ...(d1Bookmark ? { d1Bookmark } : {}) };
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
    ...(image.d1Bookmark ? { d1Bookmark: image.d1Bookmark } : {}),
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
    // Only keys this tool writes for this name (a backup key, or its .partial: streamed
    // backups upload there first), and only old ones.
    const ours = (key: string) => Boolean(parseKey(config.s3.prefix, config.name, key) || (key.endsWith(PARTIAL_SUFFIX) && parseKey(config.s3.prefix, config.name, key.slice(0, -PARTIAL_SUFFIX.length))));
    for (const u of uploads.filter((x) => ours(x.key) && x.initiated.getTime() < cutoff)) {
      await store.abortUpload(u);
      aborted.push(u.key);
    }
    // Streamed uploads whose run died before the copy to their key (PARTIAL_SUFFIX).
    const folder = backupFolder(config.s3.prefix, config.name);
    const partials = (await store.list(folder)).filter(
      (o) => o.key.endsWith(PARTIAL_SUFFIX) && parseKey(config.s3.prefix, config.name, o.key.slice(0, -PARTIAL_SUFFIX.length)) && o.lastModified.getTime() < cutoff,
    );
    if (partials.length) {
      const removed = await store.delete(partials.map((o) => o.key));
      aborted.push(...removed.deleted);
    }
    if (aborted.length) runtime.logger.warn("aborted stale multipart uploads of earlier failed runs", { name: config.name, keys: aborted });
  } catch (err) {
    runtime.logger.error("could not abort stale multipart uploads; a later run will try again", { name: config.name, error: asBackupError(err).message, aborted });
  }
  return aborted;
}
