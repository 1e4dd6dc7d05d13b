/**
 * Finding backups: list one name's backups, resolve `latest` or a file name to a key, and
 * sign a download link. Names from users are validated before any store call.
 */
import type { Config } from "./config.js";
import { BackupError } from "./errors.js";
import { ifRangeHolds, resolveRange, type RangeSpec } from "./http-range.js";
import { backupFolder, ENCRYPTED_EXTENSION, newestFirst, parseFile, parseKey } from "./keys.js";
import { downloadUrl, type LinkSigner } from "./links.js";
import type { BackupStore, ByteRange } from "./store/store.js";

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
  const key = backupKey(where, which);
  const head = await store.head(key);
  if (!head) throw new BackupError("BACKUP_NOT_FOUND", `backup ${which} does not exist in ${store.description}.`, 404);
  return { key, file: which, size: head.size };
}

/** The key of backup file `file` of this name; throws INVALID_BACKUP_FILE (400) for anything else. */
function backupKey(where: Where, file: string): string {
  if (!parseFile(where.name, file)) {
    throw new BackupError(
      "INVALID_BACKUP_FILE",
      `${JSON.stringify(file.slice(0, 200))} is not a backup file name of "${where.name}" (expected ${where.name}-YYYY-MM-DDTHH-MM-SS-mmmZ-xxxxxx.sqlite.gz, or .sqlite.gz.age for an encrypted backup, or "latest").`,
      400,
    );
  }
  return `${backupFolder(where.s3.prefix, where.name)}${file}`;
}

/** LINK_MODE=worker: how links to this server are made. */
export interface WorkerLinks {
  signer: LinkSigner;
  /** Where the links point: LINK_BASE_URL, else the origin of the request that asked; undefined in the CLI. */
  base: string | undefined;
}

/**
 * A download link to `which`: the store's presigned URL, or with `worker` a signed
 * /download URL of this server. Both expire LINK_TTL_SECONDS from `now`.
 */
export async function createLink(store: BackupStore, where: Where & Pick<Config, "linkTtlSeconds">, which: string, now: Date, worker?: WorkerLinks): Promise<Link> {
  const found = await resolveBackup(store, where, which);
  if (worker) {
    if (!worker.base) {
      throw new BackupError(
        "CONFIG_INVALID",
        "LINK_MODE=worker: there is no request to take this server's address from (the CLI and library make links without one); set LINK_BASE_URL to the public URL of the server or Worker that serves /download.",
        500,
      );
    }
    // Whole seconds: the expiry is a query parameter, and the link must not outlive the TTL.
    const expires = Math.floor(now.getTime() / 1000) + where.linkTtlSeconds;
    const claim = { file: found.file, name: where.name, expires };
    const sig = await worker.signer.sign({ method: "GET", ...claim });
    return { url: downloadUrl(worker.base, claim, sig), key: found.key, expiresAt: new Date(expires * 1000).toISOString(), size: found.size };
  }
  const url = await store.presign(found.key, where.linkTtlSeconds, found.file);
  return { url, key: found.key, expiresAt: new Date(now.getTime() + where.linkTtlSeconds * 1000).toISOString(), size: found.size };
}

/** What GET /download/{file} sends: the whole object or one range of it, or why not (416). */
export type Download =
  | { kind: "unsatisfiable"; file: string; size: number }
  | {
      kind: "bytes";
      file: string;
      /** Size of the whole object. */
      size: number;
      /** The range being sent; absent for the whole object. */
      range?: ByteRange;
      /** Absent when only the headers were asked for (HEAD). */
      body?: ReadableStream<Uint8Array>;
      etag?: string;
      lastModified?: Date;
      contentType?: string;
    };

/**
 * Open backup `file` (already checked against this name's pattern) for a download, whole or
 * `range`, validated as resolveBackup validates it. The HEAD before the read gives the size a range is resolved against; backup keys
 * are never reused, so the object does not change between the two (If-Range is honoured all
 * the same, against the HEAD's ETag or Last-Modified).
 */
export async function openBackup(
  store: BackupStore,
  where: Where,
  file: string,
  request: { range?: RangeSpec | undefined; ifRange?: string | undefined; headersOnly?: boolean },
): Promise<Download> {
  const key = backupKey(where, file);
  const head = await store.head(key);
  if (!head) throw new BackupError("BACKUP_NOT_FOUND", `backup ${file} does not exist in ${store.description}.`, 404);
  const wanted = request.range && ifRangeHolds(request.ifRange, head.etag, head.lastModified) ? resolveRange(request.range, head.size) : undefined;
  if (wanted === "unsatisfiable") return { kind: "unsatisfiable", file, size: head.size };
  const described = { kind: "bytes" as const, file, ...(head.etag ? { etag: head.etag } : {}), lastModified: head.lastModified, ...(head.contentType ? { contentType: head.contentType } : {}) };
  if (request.headersOnly) return { ...described, size: head.size, ...(wanted ? { range: wanted } : {}) };
  const object = await store.read(key, wanted ? { range: wanted } : {});
  if (!object) throw new BackupError("BACKUP_NOT_FOUND", `backup ${file} does not exist in ${store.description} (it was deleted while the download started).`, 404);
  return { ...described, size: object.size, body: object.body, ...(object.range ? { range: object.range } : {}) };
}
