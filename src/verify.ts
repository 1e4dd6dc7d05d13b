/**
 * Prove a stored backup: its size and metadata (HEAD), and optionally its content (read
 * back, decrypt if age-encrypted, gunzip, sha256). Used after every upload and by the
 * `verify` command.
 */
import { hashStream, sha256Of } from "./compress.js";
import { decryptStream, type Decryption } from "./encrypt.js";
import { BackupError } from "./errors.js";
import { ENCRYPTED_EXTENSION } from "./keys.js";
import type { Runtime } from "./runtime.js";
import { readStream, type StreamProblem } from "./sources/read-stream.js";
import { checkImage, type ImageInfo } from "./sqlite/check.js";
import { readHeader, type SqliteHeader } from "./sqlite/header.js";
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

/** Download, decrypt (with `decryption`, for an encrypted object), gunzip and hash; returns the digest and size of the decompressed content. */
export async function readBack(
  store: BackupStore,
  runtime: Pick<Runtime, "gunzip" | "sha256">,
  key: string,
  decryption?: Decryption,
): Promise<{ sha256: string; bytes: number }> {
  const stored = await store.get(key);
  const body = decryption ? await decryptStream(stored, decryption, key) : stored;
  try {
    return await hashStream(body.pipeThrough(runtime.gunzip()), runtime.sha256());
  } catch (err) {
    if (err instanceof BackupError) throw err;
    const detail = err instanceof Error ? err.message : String(err);
    throw new BackupError("VERIFY_FAILED", `${key} does not decompress: ${detail}`, 502, { cause: err });
  }
}

/**
 * VERIFY=full. An encrypted upload is opened with the run's own file key (`decryption`),
 * so no identity is needed where backups are made: the age header's MAC, every payload
 * chunk's tag, the gzip and the sha256 are all checked.
 */
export async function verifyContent(
  store: BackupStore,
  runtime: Pick<Runtime, "gunzip" | "sha256">,
  key: string,
  expected: Expected,
  decryption?: Decryption,
): Promise<void> {
  const got = await readBack(store, runtime, key, decryption);
  if (got.sha256 !== expected.sha256 || got.bytes !== expected.bytes) {
    throw new BackupError(
      "VERIFY_FAILED",
      `verification of ${key} failed: read back ${got.bytes} bytes with sha256 ${got.sha256}, expected ${expected.bytes} bytes with sha256 ${expected.sha256}.`,
      502,
    );
  }
}

/** What a backup object's metadata promises about its decompressed content. */
export interface BackupMetadata {
  sha256: string;
  bytes: number;
  /** age-encrypted (format sqlite3+gzip+age, key ending in .sqlite.gz.age). */
  encrypted: boolean;
}

/** The result of proving a backup: its content matches its metadata and SQLite finds it sound. */
export interface VerifyReport {
  key: string;
  file: string;
  bytes: number;
  sha256: string;
  pageSize: number;
  pageCount: number;
  sqliteVersion: string;
  integrity: "ok";
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

/**
 * Prove an image against its metadata: the sha256 first (anything else would be checking
 * bytes nobody uploaded), then the header and `PRAGMA integrity_check`, in place.
 * Throws VERIFY_FAILED, or the header/SQLite error (SQLITE_CORRUPT, NOT_SQLITE, …).
 */
export async function proveImage(runtime: Pick<Runtime, "sqlite" | "sha256">, image: Uint8Array, expected: BackupMetadata, what: string): Promise<ProvedImage> {
  if (image.length !== expected.bytes) {
    throw new BackupError("VERIFY_FAILED", `verification of ${what} failed: it is ${image.length} bytes, its metadata says ${expected.bytes}.`, 502);
  }
  const sha256 = await sha256Of(image, runtime.sha256());
  if (sha256 !== expected.sha256) {
    throw new BackupError(
      "VERIFY_FAILED",
      `verification of ${what} failed: the sha256 of its ${image.length} bytes is ${sha256}, its metadata says ${expected.sha256}: the content was altered or damaged after the backup was made.`,
      502,
    );
  }
  let header: SqliteHeader;
  let info: ImageInfo;
  try {
    header = readHeader(image, what);
    info = checkImage(runtime.sqlite, image, "full", what);
  } catch (err) {
    if (!(err instanceof BackupError)) throw err;
    throw new BackupError(
      err.code,
      `${err.message.replace(/\.?$/, ".")} Its content matches its sha256 metadata, so the database was already damaged when this backup was made: use an older backup.`,
      err.status,
      { cause: err },
    );
  }
  return { bytes: image.length, sha256, pageSize: header.pageSize, pageCount: info.pageCount, sqliteVersion: info.sqliteVersion, integrity: "ok" };
}

export interface VerifyOptions {
  /** The largest decompressed size accepted (MAX_BYTES): one buffer of that size is allocated. */
  maxBytes: number;
  /** age identities (AGE-SECRET-KEY-1…) for encrypted backups. */
  identities?: readonly string[];
}

/**
 * The `verify` command: HEAD (the metadata must be this tool's), download, decrypt (an
 * encrypted backup needs `identities`), gunzip into one buffer of exactly the announced
 * size, compare the sha256, then check the header and run `PRAGMA integrity_check` on it
 * in place. Memory: one buffer of the database's size.
 */
export async function verifyBackup(store: BackupStore, runtime: Pick<Runtime, "sqlite" | "gunzip" | "sha256">, key: string, options: VerifyOptions): Promise<VerifyReport> {
  const head = await store.head(key);
  if (!head) throw new BackupError("BACKUP_NOT_FOUND", `backup ${fileOf(key)} does not exist in ${store.description}.`, 404);
  const expected = backupMetadata(head, options.maxBytes);
  const body = await openBackup(store, key, expected, options.identities);
  const image = await readStream(body.pipeThrough(runtime.gunzip()), {
    expectedBytes: expected.bytes,
    maxBytes: expected.bytes,
    problem: readBackProblem(key, expected),
  });
  const proved = await proveImage(runtime, image, expected, `backup ${key}`);
  return { key, file: fileOf(key), ...proved, encrypted: expected.encrypted };
}
