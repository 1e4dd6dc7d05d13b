/**
 * Prove a stored backup: its size and metadata (HEAD), and optionally its content (read
 * back, decrypt if age-encrypted, gunzip, then sha256, size and the structural check over
 * its pages in one pass, never holding the image). Used after every upload and by the
 * `verify` command; restore (src/restore.ts) reads the same way into its temp file.
 */
import { decryptStream, type Decryption } from "./encrypt.js";
import { BackupError } from "./errors.js";
import { ENCRYPTED_EXTENSION } from "./keys.js";
import { sha256Of } from "./compress.js";
import type { Runtime, Sha256 } from "./runtime.js";
import type { StreamProblem } from "./sources/read-stream.js";
import { checkImage, sqliteVersionOf, type ImageInfo } from "./sqlite/check.js";
import { HEADER_BYTES, readHeader, type SqliteHeader } from "./sqlite/header.js";
import { StructureCheck, type StructureReport } from "./sqlite/structure.js";
import type { BackupStore, ObjectHead } from "./store/store.js";

export const BACKUP_FORMAT = "sqlite3+gzip";
/** An age-encrypted backup (key ending in .sqlite.gz.age); sha256 and bytes still describe the plain image. */
export const ENCRYPTED_BACKUP_FORMAT = "sqlite3+gzip+age";

export interface Expected {
  /** Of the plain database image. */
  sha256: string;
  bytes: number;
  /** Size of the stored object as sent (the gzip, or the age file around it). */
  storedBytes?: number;
  /** The `format` metadata the object must carry. */
  format?: string;
}

export async function verifyHead(store: BackupStore, key: string, expected: Expected): Promise<ObjectHead> {
  const head = await store.head(key);
  if (!head) throw new BackupError("VERIFY_FAILED", `verification failed: ${key} is not in the store after its upload.`, 502);
  const problems: string[] = [];
  if (expected.storedBytes !== undefined && head.size !== expected.storedBytes) {
    problems.push(`size is ${head.size} bytes, ${expected.storedBytes} were sent`);
  }
  if (head.metadata.sha256 !== expected.sha256) problems.push(`sha256 metadata is ${JSON.stringify(head.metadata.sha256 ?? null)}`);
  if (head.metadata.bytes !== String(expected.bytes)) problems.push(`bytes metadata is ${JSON.stringify(head.metadata.bytes ?? null)}`);
  if (expected.format !== undefined && head.metadata.format !== expected.format) problems.push(`format metadata is ${JSON.stringify(head.metadata.format ?? null)}`);
  if (problems.length) throw new BackupError("VERIFY_FAILED", `verification of ${key} failed: ${problems.join("; ")}.`, 502);
  return head;
}

/**
 * VERIFY=full, after an upload. The object is read back once — decrypted (an encrypted upload
 * with the run's own file key, `decryption`, so no identity is needed where backups are made:
 * the age header's MAC and every payload chunk's tag are checked), gunzipped, and its bytes
 * counted, hashed and structurally checked as they stream; nothing is held but the chunks in
 * flight and the check's few bytes per page. Throws VERIFY_FAILED when the content is not
 * what was uploaded, and SQLITE_CORRUPT when it is but its pages fail the structural check.
 */
export async function verifyContent(
  store: BackupStore,
  runtime: Pick<Runtime, "gunzip" | "sha256">,
  key: string,
  expected: Expected,
  decryption?: Decryption,
): Promise<void> {
  const stored = await store.get(key);
  const body = decryption ? await decryptStream(stored, decryption, key) : stored;
  const mismatch = (bytes: string, sha256: string) =>
    new BackupError("VERIFY_FAILED", `verification of ${key} failed: read back ${bytes} bytes with sha256 ${sha256}, expected ${expected.bytes} bytes with sha256 ${expected.sha256}.`, 502);
  const got = await streamImage(body.pipeThrough(runtime.gunzip()), runtime.sha256(), {
    expectedBytes: expected.bytes,
    problem: (p) => {
      if (p.kind === "failed") {
        if (p.cause instanceof BackupError) return p.cause;
        const detail = p.cause instanceof Error ? p.cause.message : String(p.cause);
        return new BackupError("VERIFY_FAILED", `${key} does not decompress: ${detail}`, 502, { cause: p.cause });
      }
      const read = p.kind === "wrong-length" && p.complete ? `${p.bytes} bytes` : `more than ${expected.bytes} bytes`;
      return new BackupError("VERIFY_FAILED", `verification of ${key} failed: read back ${read}, expected ${expected.bytes} bytes with sha256 ${expected.sha256}.`, 502);
    },
  });
  if (got.sha256 !== expected.sha256) throw mismatch(String(got.bytes), got.sha256);
  const findings = got.structure.findings;
  if (findings.length > 0) {
    throw new BackupError(
      "SQLITE_CORRUPT",
      `${key} is the image that was uploaded (its sha256 matches), but it fails the structural check: ${findings.slice(0, 3).join("; ")}`,
      422,
    );
  }
}

/** A decompressed backup read once, in file order. */
export interface StreamedImage {
  bytes: number;
  sha256: string;
  /** The first HEADER_BYTES bytes (all of a shorter image), for the header's checks. */
  head: Uint8Array;
  /** SQLite's b-tree checks over the pages as they passed (src/sqlite/structure.ts). */
  structure: StructureReport;
}

export interface StreamImageOptions {
  /** The exact size the content must have; reading stops as soon as it runs past it. */
  expectedBytes: number;
  problem: (p: StreamProblem) => Error;
  /**
   * Receives each chunk after it was counted, hashed and checked (restore writes it to its
   * temp file). Awaited before the next chunk is read, so a slow sink slows the download
   * instead of piling chunks up in memory.
   */
  sink?: (chunk: Uint8Array) => Promise<void>;
  /** The bytes of content so far, after each chunk. */
  onProgress?: (bytes: number) => void;
}

/**
 * Read a decompressed backup once: count, sha256 and the structural check in one pass, each
 * chunk handed to `sink`. Memory: the chunks in flight and the check's few bytes per page.
 * Throws `problem(…)` when the stream fails or its length is not `expectedBytes`, and what
 * the sink throws; the stream is cancelled then, so the download stops.
 */
export async function streamImage(content: ReadableStream<Uint8Array>, hasher: Sha256, options: StreamImageOptions): Promise<StreamedImage> {
  const { expectedBytes, problem, sink } = options;
  const check = new StructureCheck();
  const head = new Uint8Array(HEADER_BYTES);
  let bytes = 0;
  const reader = content.getReader();
  try {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (cause) {
        throw problem({ kind: "failed", bytes, expected: expectedBytes, cause });
      }
      if (result.done) break;
      const chunk = result.value;
      if (chunk.byteLength === 0) continue;
      if (bytes < HEADER_BYTES) head.set(chunk.subarray(0, HEADER_BYTES - bytes), bytes);
      bytes += chunk.byteLength;
      if (bytes > expectedBytes) throw problem({ kind: "wrong-length", bytes, expected: expectedBytes, complete: false });
      hasher.update(chunk);
      check.update(chunk);
      if (sink) await sink(chunk);
      options.onProgress?.(bytes);
    }
  } catch (err) {
    await reader.cancel(err).catch(() => undefined);
    throw err;
  } finally {
    reader.releaseLock();
  }
  if (bytes !== expectedBytes) throw problem({ kind: "wrong-length", bytes, expected: expectedBytes, complete: true });
  return { bytes, sha256: await hasher.digest(), head: head.subarray(0, Math.min(bytes, HEADER_BYTES)), structure: check.finish() };
}

/** What a backup object's metadata promises about its decompressed content. */
export interface BackupMetadata {
  sha256: string;
  bytes: number;
  /** age-encrypted (format sqlite3+gzip+age, key ending in .sqlite.gz.age). */
  encrypted: boolean;
}

/**
 * How a proved image was checked: SQLite's own `PRAGMA integrity_check` (sql.js, on the image
 * in memory: restore, up to RESTORE_SQLITE_CHECK_MAX_BYTES), or the structural check over its
 * pages as they streamed (src/sqlite/structure.ts: SQLite's b-tree checks, what
 * `PRAGMA quick_check` verifies of the file's structure).
 */
export type ImageCheck = "integrity_check" | "structure";

/** The result of proving a backup: its content matches its metadata and its check finds it sound. */
export interface VerifyReport {
  key: string;
  file: string;
  bytes: number;
  sha256: string;
  pageSize: number;
  pageCount: number;
  sqliteVersion: string;
  /** The check found nothing wrong. */
  integrity: "ok";
  /** Which check that was. */
  check: ImageCheck;
  encrypted: boolean;
}

export type ProvedImage = Omit<VerifyReport, "key" | "file" | "encrypted">;

const fileOf = (key: string) => key.slice(key.lastIndexOf("/") + 1);

/**
 * The metadata a verify or restore depends on. Throws VERIFY_FAILED naming every field that
 * is missing or invalid: without them there is nothing to compare the content against.
 */
export function backupMetadata(head: ObjectHead, maxBytes: number): BackupMetadata {
  const m = head.metadata;
  const problems: string[] = [];
  // The key says whether the object is encrypted; the metadata must agree.
  const encrypted = head.key.endsWith(ENCRYPTED_EXTENSION);
  const format = encrypted ? ENCRYPTED_BACKUP_FORMAT : BACKUP_FORMAT;
  if (m.format !== format) problems.push(`format is ${JSON.stringify(m.format ?? null)}, expected "${format}" for a key ending in ${encrypted ? ENCRYPTED_EXTENSION : ".sqlite.gz"}`);
  const sha256 = m.sha256?.toLowerCase();
  if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256)) problems.push(`sha256 is ${JSON.stringify(m.sha256 ?? null)}, expected 64 hex digits`);
  const bytes = /^\d{1,16}$/.test(m.bytes ?? "") ? Number(m.bytes) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) problems.push(`bytes is ${JSON.stringify(m.bytes ?? null)}, expected a positive whole number`);
  else if (bytes > maxBytes) problems.push(`bytes is ${bytes}, over MAX_BYTES (${maxBytes})`);
  if (problems.length) {
    throw new BackupError("VERIFY_FAILED", `${head.key} cannot be verified: its metadata is not that of a backup made by this tool (${problems.join("; ")}).`, 502);
  }
  return { sha256: sha256!, bytes, encrypted };
}

/**
 * The backup's gzip stream: the object itself, or, for an encrypted one, its decryption
 * with `identities`. Throws IDENTITY_REQUIRED (before any download) when an encrypted
 * backup meets no identity, and DECRYPT_FAILED when the identities cannot open it (the
 * header is read before this resolves, so a wrong key fails before anything is written).
 */
export async function openBackup(store: BackupStore, key: string, expected: BackupMetadata, identities: readonly string[] | undefined): Promise<ReadableStream<Uint8Array>> {
  if (!expected.encrypted) return store.get(key);
  if (!identities?.length) {
    throw new BackupError(
      "IDENTITY_REQUIRED",
      `backup ${fileOf(key)} is encrypted with age: set AGE_IDENTITY (an AGE-SECRET-KEY-1… secret key) or AGE_IDENTITY_FILE (a key file written by age-keygen) to an identity whose public key was in AGE_RECIPIENTS when it was made.`,
      400,
    );
  }
  return decryptStream(await store.get(key), { identities }, `backup ${fileOf(key)}`);
}

/** A problem reading a decompressed backup, as the error that names it. */
export function readBackProblem(key: string, expected: BackupMetadata): (p: StreamProblem) => BackupError {
  return (p) => {
    switch (p.kind) {
      case "wrong-length":
        return new BackupError(
          "VERIFY_FAILED",
          `verification of ${key} failed: it decompresses to ${p.complete ? "" : "more than "}${p.complete ? p.bytes : p.expected} bytes, its metadata says ${expected.bytes}.`,
          502,
        );
      case "too-large":
        return new BackupError("VERIFY_FAILED", `verification of ${key} failed: it decompresses to more than ${p.limit} bytes, its metadata says ${expected.bytes}.`, 502);
      case "failed": {
        if (p.cause instanceof BackupError) return p.cause;
        const detail = p.cause instanceof Error ? p.cause.message : String(p.cause);
        return new BackupError("VERIFY_FAILED", `verification of ${key} failed: it does not decompress (${detail}, after ${p.bytes} decompressed bytes).`, 502, { cause: p.cause });
      }
    }
  };
}

/** Why content whose sha256 differs from its metadata's differs, unless the caller knows better. */
const ALTERED = "the content was altered or damaged after the backup was made";

/** VERIFY_FAILED unless `got` has the metadata's sha256 (its size was compared while it was read). */
export function expectSha256(what: string, got: { bytes: number; sha256: string }, expected: BackupMetadata, because = ALTERED): void {
  if (got.sha256 !== expected.sha256) {
    throw new BackupError("VERIFY_FAILED", `verification of ${what} failed: the sha256 of its ${got.bytes} bytes is ${got.sha256}, its metadata says ${expected.sha256}: ${because}.`, 502);
  }
}

/** SQLITE_CORRUPT with the structural check's first findings, if it has any. */
export function expectSoundStructure(report: StructureReport, what: string): void {
  if (report.findings.length > 0) {
    throw new BackupError("SQLITE_CORRUPT", `${what} failed the structural check: ${report.findings.slice(0, 3).join("; ")}`, 422);
  }
}

/**
 * A header or check error about content that matches its sha256 metadata: the database was
 * already damaged when it was backed up, and an older backup is the way out.
 */
function alreadyDamaged(err: unknown): unknown {
  if (!(err instanceof BackupError)) return err;
  return new BackupError(
    err.code,
    `${err.message.replace(/\.?$/, ".")} Its content matches its sha256 metadata, so the database was already damaged when this backup was made: use an older backup.`,
    err.status,
    { cause: err },
  );
}

/**
 * Prove a streamed image (streamImage) against its metadata: the sha256 first (anything else
 * would be checking bytes nobody uploaded), then the header against its length and the
 * structural check's verdict. Throws VERIFY_FAILED, or the header/structure error
 * (SQLITE_CORRUPT, NOT_SQLITE, SQLITE_TRUNCATED …).
 */
export function proveStreamed(runtime: Pick<Runtime, "sqlite">, streamed: StreamedImage, expected: BackupMetadata, what: string): ProvedImage {
  expectSha256(what, streamed, expected);
  let header: SqliteHeader;
  try {
    header = readHeader(streamed.head, what, streamed.bytes);
    expectSoundStructure(streamed.structure, what);
  } catch (err) {
    throw alreadyDamaged(err);
  }
  return {
    bytes: streamed.bytes,
    sha256: streamed.sha256,
    pageSize: header.pageSize,
    pageCount: streamed.structure.pageCount,
    sqliteVersion: sqliteVersionOf(runtime.sqlite),
    integrity: "ok",
    check: "structure",
  };
}

/**
 * Prove an image held in memory (restore's read-back of a temp file up to
 * RESTORE_SQLITE_CHECK_MAX_BYTES): its size and sha256, then the header and
 * `PRAGMA integrity_check`, in place. `because` explains a sha256 difference.
 * Throws VERIFY_FAILED, or the header/SQLite error (SQLITE_CORRUPT, NOT_SQLITE, …).
 */
export async function proveImage(runtime: Pick<Runtime, "sqlite" | "sha256">, image: Uint8Array, expected: BackupMetadata, what: string, because = ALTERED): Promise<ProvedImage> {
  if (image.length !== expected.bytes) {
    throw new BackupError("VERIFY_FAILED", `verification of ${what} failed: it is ${image.length} bytes, its metadata says ${expected.bytes}.`, 502);
  }
  const sha256 = await sha256Of(image, runtime.sha256());
  expectSha256(what, { bytes: image.length, sha256 }, expected, because);
  let header: SqliteHeader;
  let info: ImageInfo;
  try {
    header = readHeader(image, what);
    info = checkImage(runtime.sqlite, image, "full", what);
  } catch (err) {
    throw alreadyDamaged(err);
  }
  return { bytes: image.length, sha256, pageSize: header.pageSize, pageCount: info.pageCount, sqliteVersion: info.sqliteVersion, integrity: "ok", check: "integrity_check" };
}

export interface VerifyOptions {
  /** The largest decompressed size accepted (MAX_BYTES); nothing of that size is allocated. */
  maxBytes: number;
  /** age identities (AGE-SECRET-KEY-1…) for encrypted backups. */
  identities?: readonly string[];
  /** Bytes of the image read back so far, of `total` (throttle it: it is called per chunk). */
  onProgress?: (bytes: number, total: number) => void;
}

/**
 * The `verify` command: HEAD (the metadata must be this tool's), download, decrypt (an
 * encrypted backup needs `identities`), gunzip, and in one pass count the bytes (stopping as
 * soon as they run past the announced size), hash them and run the structural check over the
 * pages; then compare the sha256 and check the header and the structural verdict. Memory:
 * the chunks in flight and a few bytes per page, whatever the database's size.
 */
export async function verifyBackup(store: BackupStore, runtime: Pick<Runtime, "sqlite" | "gunzip" | "sha256">, key: string, options: VerifyOptions): Promise<VerifyReport> {
  const head = await store.head(key);
  if (!head) throw new BackupError("BACKUP_NOT_FOUND", `backup ${fileOf(key)} does not exist in ${store.description}.`, 404);
  const expected = backupMetadata(head, options.maxBytes);
  const body = await openBackup(store, key, expected, options.identities);
  const onProgress = options.onProgress;
  const streamed = await streamImage(body.pipeThrough(runtime.gunzip()), runtime.sha256(), {
    expectedBytes: expected.bytes,
    problem: readBackProblem(key, expected),
    ...(onProgress ? { onProgress: (n: number) => onProgress(n, expected.bytes) } : {}),
  });
  const proved = proveStreamed(runtime, streamed, expected, `backup ${key}`);
  return { key, file: fileOf(key), ...proved, encrypted: expected.encrypted };
}
