/**
 * The store as a Cloudflare R2 binding (R2_BUCKET names a `[[r2_buckets]]` binding of the
 * Worker): the same keys, metadata and contract as the S3 store (src/store/s3.ts), through
 * the binding's own API instead of signed HTTP requests. No credentials, no endpoint.
 *
 * Written against R2BucketLike, the few binding methods it uses, declared here so that the
 * core imports no Workers types; `@cloudflare/workers-types`' R2Bucket is checked to be
 * assignable to it (functions/lib/worker.ts).
 *
 * What the binding cannot do, and what this store does instead:
 * - list multipart uploads: every multipart upload writes a marker object `<key>.uploading`
 *   (its upload id in the marker's metadata) before its first part and deletes it after
 *   complete or abort. A failed upload is aborted at once; an isolate that died mid-upload
 *   (CPU limit, eviction) leaves the marker, which `listUploads` returns, so the next run's
 *   stale-upload cleanup aborts the upload by id (`resumeMultipartUpload(key, id).abort()`).
 * - server-side copy: `copy` streams the object through the Worker into a new multipart
 *   upload (the compressed bytes, no gzip: see docs/r2.md for its CPU cost).
 * - presign: refused (`canPresign` is false); links are served by the Worker.
 */
import { BackupError } from "../errors.js";
import type { BackupStore, ByteRange, DeleteResult, ObjectBody, ObjectHead, PendingUpload, StoredObject, UploadOptions } from "./store.js";

// ------------------------------------------------------------------- the binding's shape

export interface R2ObjectLike {
  readonly key: string;
  readonly size: number;
  readonly etag: string;
  readonly uploaded: Date;
  readonly httpMetadata?: { contentType?: string; contentDisposition?: string };
  readonly customMetadata?: Record<string, string>;
}

export interface R2ObjectBodyLike extends R2ObjectLike {
  readonly body: ReadableStream<Uint8Array>;
}

export interface R2RangeLike {
  offset: number;
  length?: number;
}

export interface R2ConditionalLike {
  etagMatches?: string;
  etagDoesNotMatch?: string;
}

export interface R2UploadedPartLike {
  partNumber: number;
  etag: string;
}

export interface R2MultipartUploadLike {
  readonly key: string;
  readonly uploadId: string;
  uploadPart(partNumber: number, value: ArrayBufferView | ArrayBuffer | string): Promise<R2UploadedPartLike>;
  abort(): Promise<void>;
  complete(uploadedParts: R2UploadedPartLike[]): Promise<R2ObjectLike>;
}

export interface R2PutOptionsLike {
  onlyIf?: R2ConditionalLike;
  httpMetadata?: { contentType?: string; contentDisposition?: string };
  customMetadata?: Record<string, string>;
}

/** The R2 bucket binding methods this project uses (a structural subset of workers-types' R2Bucket). */
export interface R2BucketLike {
  head(key: string): Promise<R2ObjectLike | null>;
  get(key: string, options?: { onlyIf?: R2ConditionalLike; range?: R2RangeLike }): Promise<R2ObjectBodyLike | R2ObjectLike | null>;
  put(key: string, value: string | ArrayBuffer | ArrayBufferView | null, options?: R2PutOptionsLike): Promise<R2ObjectLike | null>;
  delete(keys: string | string[]): Promise<void>;
  list(options?: { prefix?: string; cursor?: string; limit?: number; include?: ("httpMetadata" | "customMetadata")[] }): Promise<{ objects: R2ObjectLike[]; truncated: boolean; cursor?: string }>;
  createMultipartUpload(key: string, options?: { httpMetadata?: { contentType?: string; contentDisposition?: string }; customMetadata?: Record<string, string> }): Promise<R2MultipartUploadLike>;
  resumeMultipartUpload(key: string, uploadId: string): R2MultipartUploadLike;
}

/** A value in `env` that has the binding's methods: what R2_BUCKET must name. */
export function isR2Bucket(value: unknown): value is R2BucketLike {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return ["head", "get", "put", "delete", "list", "createMultipartUpload", "resumeMultipartUpload"].every((m) => typeof v[m] === "function");
}

// ------------------------------------------------------------------------------ the store

export interface R2StoreOptions {
  /** Bytes of every part but the last: R2 needs them equal and ≥ 5 MiB. */
  partSize?: number;
}

/** R2's smallest part (every part but the last). */
export const R2_MIN_PART_SIZE = 5 * 1024 * 1024;
/** Suffix of the marker object of a multipart upload in progress (see the module comment). */
export const UPLOAD_MARKER_SUFFIX = ".uploading";
const MARKER_TYPE = "application/x-sqlite-edge-backup-upload";

export type R2Store = BackupStore & { readonly canPresign: false };

/** `binding` is the variable's value (for messages): `R2_BUCKET=BACKUPS` → "BACKUPS". */
export function createR2Store(bucket: R2BucketLike, binding: string, options: R2StoreOptions = {}): R2Store {
  const partSize = Math.max(options.partSize ?? R2_MIN_PART_SIZE, R2_MIN_PART_SIZE);
  const where = `R2 binding ${binding}`;
  const fail = (err: unknown, action: string): BackupError =>
    err instanceof BackupError ? err : new BackupError("STORE_ERROR", `${action} failed on ${where}: ${describe(err)}`, 502, { cause: err });

  /** The upload's marker object: a run that dies leaves it, and a later run finds the upload by it. */
  async function mark(upload: R2MultipartUploadLike): Promise<void> {
    await bucket.put(upload.key + UPLOAD_MARKER_SUFFIX, "", { httpMetadata: { contentType: MARKER_TYPE }, customMetadata: { "upload-id": upload.uploadId } });
  }
  async function unmark(key: string): Promise<void> {
    await bucket.delete(key + UPLOAD_MARKER_SUFFIX);
  }

  /**
   * `body` into R2: one put when it fits one part, else a multipart upload of equal parts cut
   * with two reused buffers (one filling while the other's part is sent), so memory is two
   * parts whatever the size. On any failure the upload is aborted and the key removed.
   */
  async function streamTo(key: string, body: ReadableStream<Uint8Array>, opts: Omit<UploadOptions, "onProgress"> & { onProgress?: (n: number) => void }): Promise<void> {
    const httpMetadata = { contentType: opts.contentType, contentDisposition: opts.contentDisposition };
    const customMetadata = opts.metadata;
    const reader = body.getReader();
    const buffers = [new Uint8Array(partSize), undefined as Uint8Array | undefined];
    let current = buffers[0]!;
    let filled = 0;
    let upload: R2MultipartUploadLike | undefined;
    const parts: R2UploadedPartLike[] = [];
    let inFlight: Promise<void> | undefined;
    let sent = 0;
    let completed = false;
    const send = async (bytes: Uint8Array): Promise<void> => {
      if (!upload) {
        upload = await bucket.createMultipartUpload(key, { httpMetadata, customMetadata });
        await mark(upload);
      }
      const u: R2MultipartUploadLike = upload;
      const partNumber = parts.length + 1;
      parts.push({ partNumber, etag: "" });
      inFlight = (async () => {
        const part = await u.uploadPart(partNumber, bytes);
        parts[partNumber - 1] = part;
        sent += bytes.length;
        opts.onProgress?.(sent);
      })();
      // Seen by the next await of inFlight; never an unhandled rejection meanwhile.
      inFlight.catch(() => undefined);
    };
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let at = 0;
        while (at < value.length) {
          const n = Math.min(value.length - at, partSize - filled);
          current.set(value.subarray(at, at + n), filled);
          filled += n;
          at += n;
          if (filled === partSize) {
            // The other buffer is free once its part is sent: wait for it, then send this one.
            await inFlight;
            await send(current);
            const other = current === buffers[0] ? 1 : 0;
            current = buffers[other] ??= new Uint8Array(partSize);
            filled = 0;
          }
        }
      }
      if (!upload) {
        // Small enough for one request (as lib-storage does for the S3 store).
        await bucket.put(key, current.subarray(0, filled), { httpMetadata, customMetadata });
        opts.onProgress?.(filled);
        return;
      }
      await inFlight;
      // R2 needs every part but the last to be partSize: the rest is the last (possibly none).
      if (filled > 0) {
        await send(current.subarray(0, filled));
        await inFlight;
      }
      await upload.complete(parts);
      completed = true;
      await unmark(key).catch(() => undefined);
    } catch (err) {
      await reader.cancel(err).catch(() => undefined);
      await inFlight?.catch(() => undefined);
      if (upload && !completed) {
        await upload.abort().catch(() => undefined);
        await unmark(key).catch(() => undefined);
      }
      // A complete() that failed may still have succeeded: the key is this run's own.
      await bucket.delete(key).catch(() => undefined);
      throw err;
    } finally {
      reader.releaseLock();
    }
  }

  const store: R2Store = {
    description: `r2 binding ${binding}`,
    canPresign: false,

    async upload(key: string, body: ReadableStream<Uint8Array>, opts: UploadOptions): Promise<void> {
      try {
        await streamTo(key, body, opts);
      } catch (err) {
        // Not an answer from the store (e.g. the body stream failed): say it was the upload.
        const e = fail(err, `upload of ${key}`);
        throw e.code === "STORE_ERROR" ? new BackupError("UPLOAD_FAILED", e.message, 502, { cause: err }) : e;
      }
    },

    /**
     * The binding has no server-side copy: the object streams through the Worker into a new
     * upload with the new metadata (its compressed bytes only, no gzip).
     */
    async copy(from: string, to: string, _size: number, opts: Omit<UploadOptions, "onProgress">): Promise<void> {
      try {
        const object = await bucket.get(from);
        if (!object || !("body" in object)) throw new BackupError("STORE_ERROR", `copy of ${from} to ${to} failed on ${where}: there is no object ${from}`, 502);
        await streamTo(to, object.body, opts);
      } catch (err) {
        throw fail(err, `copy of ${from} to ${to}`);
      }
    },

    async head(key: string): Promise<ObjectHead | undefined> {
      let object: R2ObjectLike | null;
      try {
        object = await bucket.head(key);
      } catch (err) {
        throw fail(err, `HEAD ${key}`);
      }
      if (!object) return undefined;
      return {
        key,
        size: object.size,
        lastModified: object.uploaded,
        metadata: Object.fromEntries(Object.entries(object.customMetadata ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
        ...(object.httpMetadata?.contentType ? { contentType: object.httpMetadata.contentType } : {}),
        etag: quoted(object.etag),
      };
    },

    async list(prefix: string): Promise<StoredObject[]> {
      const out: StoredObject[] = [];
      let cursor: string | undefined;
      try {
        do {
          const page = await bucket.list({ prefix, limit: 1000, ...(cursor ? { cursor } : {}) });
          for (const o of page.objects) out.push({ key: o.key, size: o.size, lastModified: o.uploaded });
          cursor = page.truncated ? page.cursor : undefined;
        } while (cursor);
      } catch (err) {
        throw fail(err, `listing ${prefix}`);
      }
      return out;
    },

    /** The object's bytes; with `range`, only those (R2's own ranged read). */
    async get(key: string, range?: { offset: number; length?: number }): Promise<ReadableStream<Uint8Array>> {
      let object: R2ObjectBodyLike | R2ObjectLike | null;
      try {
        object = await bucket.get(key, range ? { range } : undefined);
      } catch (err) {
        throw fail(err, `GET ${key}`);
      }
      if (!object || !("body" in object)) throw new BackupError("STORE_ERROR", `GET ${key} failed on ${where}: there is no such object (NoSuchKey)`, 502);
      return object.body;
    },

    /** For GET /download (Worker-served links): R2's own ranged read, clipped at the object's end. */
    async read(key: string, opts: { range?: ByteRange } = {}): Promise<ObjectBody | undefined> {
      const { range } = opts;
      let object: R2ObjectBodyLike | R2ObjectLike | null;
      try {
        object = await bucket.get(key, range ? { range: { offset: range.offset, length: range.length } } : undefined);
      } catch (err) {
        throw fail(err, `GET ${key}${range ? ` (bytes ${range.offset}+${range.length})` : ""}`);
      }
      if (!object) return undefined;
      if (!("body" in object)) throw new BackupError("STORE_ERROR", `GET ${key} failed on ${where}: the binding answered without a body`, 502);
      return {
        body: object.body,
        size: object.size,
        ...(range ? { range: { offset: range.offset, length: Math.max(0, Math.min(range.length, object.size - range.offset)) } } : {}),
        etag: quoted(object.etag),
        lastModified: object.uploaded,
        ...(object.httpMetadata?.contentType ? { contentType: object.httpMetadata.contentType } : {}),
      };
    },

    async delete(keys: readonly string[]): Promise<DeleteResult> {
      const result: DeleteResult = { deleted: [], failed: [] };
      // The binding deletes up to 1000 keys per call, all or nothing.
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000);
        try {
          await bucket.delete(batch);
          result.deleted.push(...batch);
        } catch (err) {
          const message = describe(err);
          for (const key of batch) result.failed.push({ key, message });
        }
      }
      return result;
    },

    async presign(key: string): Promise<string> {
      throw new BackupError("PRESIGN_UNSUPPORTED", `${where} cannot sign links to ${key.split("/").pop()}: an R2 binding has no credentials to sign with. Set LINK_SECRET (at least 32 random characters) so that the Worker serves the download (LINK_MODE=worker), or use the S3 API (S3_* settings) for presigned links.`, 501);
    },

    async listUploads(prefix: string): Promise<PendingUpload[]> {
      // Markers of uploads in progress, or of runs that died before aborting theirs.
      const out: PendingUpload[] = [];
      let cursor: string | undefined;
      try {
        do {
          const page = await bucket.list({ prefix, limit: 1000, include: ["customMetadata"], ...(cursor ? { cursor } : {}) });
          for (const o of page.objects) {
            const uploadId = o.customMetadata?.["upload-id"];
            if (o.key.endsWith(UPLOAD_MARKER_SUFFIX) && uploadId) out.push({ key: o.key.slice(0, -UPLOAD_MARKER_SUFFIX.length), uploadId, initiated: o.uploaded });
          }
          cursor = page.truncated ? page.cursor : undefined;
        } while (cursor);
      } catch (err) {
        throw fail(err, `listing multipart uploads under ${prefix}`);
      }
      return out;
    },

    async abortUpload(upload: PendingUpload): Promise<void> {
      try {
        await bucket.resumeMultipartUpload(upload.key, upload.uploadId).abort();
      } catch (err) {
        // Already completed or aborted: R2 answers "no such upload"; the marker is all that is left.
        if (!/NoSuchUpload|no such upload|does not exist|not found/i.test(describe(err))) throw fail(err, `aborting the multipart upload of ${upload.key}`);
      }
      await unmark(upload.key).catch((err: unknown) => {
        throw fail(err, `deleting the upload marker of ${upload.key}`);
      });
    },

    async abortUploads(key: string): Promise<number> {
      const mine = (await store.listUploads(key)).filter((u) => u.key === key);
      for (const u of mine) await store.abortUpload(u);
      return mine.length;
    },

    async putSmall(key: string, body: string, opts: { contentType: string; ifAbsent?: boolean }): Promise<boolean> {
      try {
        // R2's conditional put answers null when the condition fails (If-None-Match: *).
        const put = await bucket.put(key, body, { httpMetadata: { contentType: opts.contentType }, ...(opts.ifAbsent ? { onlyIf: { etagDoesNotMatch: "*" } } : {}) });
        return put !== null;
      } catch (err) {
        throw fail(err, `PUT ${key}`);
      }
    },

    async getSmall(key: string): Promise<string | undefined> {
      try {
        const object = await bucket.get(key);
        if (!object || !("body" in object)) return undefined;
        return await textOf(object.body);
      } catch (err) {
        throw fail(err, `GET ${key}`);
      }
    },
  };
  return store;
}

async function textOf(stream: ReadableStream<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  const reader = stream.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
  return text + decoder.decode();
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

/** The binding's etag is bare; HTTP (ETag, If-Range) and the S3 store quote it. */
function quoted(etag: string): string {
  return etag.startsWith('"') ? etag : `"${etag}"`;
}
