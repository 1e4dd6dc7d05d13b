/**
 * The S3-compatible store (AWS S3, Cloudflare R2, MinIO, OpenStack Swift s3api), on the
 * AWS SDK v3. Runtime-free: the SDK picks its Node or browser/Workers build by itself.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCopyCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import type { S3Config } from "../config.js";
import { BackupError } from "../errors.js";
import { storeError } from "./s3-errors.js";
import type { BackupStore, DeleteResult, ObjectHead, PendingUpload, StoredObject, UploadOptions } from "./store.js";

export interface S3StoreOptions {
  /** Multipart part size; S3 requires ≥ 5 MiB for every part but the last. */
  partSize?: number;
  /** Parts uploaded at once. Workers allow 6 connections per invocation: keep ≤ 4. */
  queueSize?: number;
  /** Injected for tests and runtimes with their own HTTP handler. */
  clientConfig?: Partial<S3ClientConfig>;
  /** Largest object copied with one CopyObject (default MAX_SINGLE_COPY; tests lower it). */
  maxSingleCopy?: number;
  /** Part size of a multipart copy (default COPY_PART_SIZE). */
  copyPartSize?: number;
}

export const MIN_PART_SIZE = 5 * 1024 * 1024;

export const DEFAULT_MAX_ATTEMPTS = 4;
/** CopyObject's limit; larger objects are copied with UploadPartCopy. */
export const MAX_SINGLE_COPY = 5 * 1024 * 1024 * 1024;
/** Part size of a multipart copy: equal parts (R2 requires them), 10 000 parts cover 5 TiB. */
export const COPY_PART_SIZE = 512 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 60_000;

export function createS3Client(config: S3Config, extra: Partial<S3ClientConfig> = {}): S3Client {
  const timeoutMs = config.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const client = new S3Client({
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    forcePathStyle: config.forcePathStyle,
    ...(config.accessKeyId && config.secretAccessKey
      ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } }
      : {}),
    // With the defaults, streamed uploads use aws-chunked trailing checksums that several
    // S3-compatible servers reject or store corrupted, and R2 refuses CRC32 on multipart.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    // The SDK's standard retry strategy retries only what is transient (5xx, throttling such as
    // SlowDown, connection resets, timeouts) with jittered backoff; 403, 404 and signature
    // errors fail at once. lib-storage sends each part as its own request, so a part is
    // retried, not the upload.
    maxAttempts: config.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    // Without a timeout a server that stops answering hangs the backup forever. Both HTTP
    // handlers take these options (Node: idle socket and time to the response's headers;
    // Workers' fetch: time to the response); the timeout is an error, and so retried.
    requestHandler: {
      connectionTimeout: Math.min(timeoutMs, 10_000),
      requestTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      throwOnRequestTimeout: true,
    },
    ...extra,
  });
  addDeleteObjectsContentMd5(client);
  return client;
}

/**
 * DeleteObjects must carry Content-MD5 on OpenStack Swift and older MinIO; SDK v3 sends a
 * CRC32 checksum header instead. Add the MD5 of the serialized body (it is signed after).
 */
function addDeleteObjectsContentMd5(client: S3Client): void {
  const Md5 = client.config.md5;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (context.commandName === "DeleteObjectsCommand" && request.headers && typeof request.body === "string") {
        const hash = new Md5();
        hash.update(new TextEncoder().encode(request.body));
        const digest = await hash.digest();
        request.headers["content-md5"] = btoa(String.fromCharCode(...digest));
      }
      return next(args);
    },
    { step: "build", name: "deleteObjectsContentMd5", priority: "low" },
  );
}

export function createS3Store(config: S3Config, options: S3StoreOptions = {}): BackupStore & { client: S3Client } {
  const client = createS3Client(config, options.clientConfig);
  const Bucket = config.bucket;
  const partSize = Math.max(options.partSize ?? MIN_PART_SIZE, MIN_PART_SIZE);
  const queueSize = options.queueSize ?? 4;
  const where = `s3://${Bucket}${config.endpoint ? ` at ${config.endpoint}` : ""}`;
  const fail = (err: unknown, action: string) => storeError(err, action, config);

  const store = {
    client,
    description: where,
    canPresign: true,

    async upload(key: string, body: ReadableStream<Uint8Array>, opts: UploadOptions): Promise<void> {
      // Loaded on first use, so that commands that never upload (list, link) start faster.
      const { Upload } = await import("@aws-sdk/lib-storage");
      const upload = new Upload({
        client,
        params: {
          Bucket,
          Key: key,
          Body: body,
          ContentType: opts.contentType,
          ContentDisposition: opts.contentDisposition,
          Metadata: opts.metadata,
        },
        partSize,
        queueSize,
        leavePartsOnError: false,
      });
      upload.on("httpUploadProgress", (p) => {
        if (typeof p.loaded === "number") opts.onProgress?.(p.loaded);
      });
      try {
        await upload.done();
      } catch (err) {
        // lib-storage aborts on most failures, but not when the abort itself fails, and a
        // CompleteMultipartUpload that timed out may still have succeeded. The key is this
        // run's own, so removing whatever is there is always safe.
        await cleanupFailedUpload(key).catch(() => undefined);
        const e = fail(err, `upload of ${key}`);
        // Not an answer from the store (e.g. the body stream failed): say it was the upload.
        throw e.code === "STORE_ERROR" ? new BackupError("UPLOAD_FAILED", e.message, 502, { cause: err }) : e;
      }
    },

    async copy(from: string, to: string, size: number, opts: Omit<UploadOptions, "onProgress">): Promise<void> {
      const CopySource = `${Bucket}/${from.split("/").map(encodeURIComponent).join("/")}`;
      const headers = { ContentType: opts.contentType, ContentDisposition: opts.contentDisposition, Metadata: opts.metadata };
      const singleLimit = options.maxSingleCopy ?? MAX_SINGLE_COPY;
      if (size <= singleLimit) {
        try {
          await client.send(new CopyObjectCommand({ Bucket, Key: to, CopySource, MetadataDirective: "REPLACE", ...headers }));
        } catch (err) {
          throw fail(err, `copy of ${from} to ${to}`);
        }
        return;
      }
      const partBytes = options.copyPartSize ?? COPY_PART_SIZE;
      let uploadId: string | undefined;
      try {
        uploadId = (await client.send(new CreateMultipartUploadCommand({ Bucket, Key: to, ...headers }))).UploadId;
        if (!uploadId) throw new Error("CreateMultipartUpload returned no UploadId");
        const parts: { ETag: string; PartNumber: number }[] = [];
        for (let start = 0, part = 1; start < size; start += partBytes, part++) {
          const end = Math.min(start + partBytes, size) - 1;
          const r = await client.send(new UploadPartCopyCommand({ Bucket, Key: to, UploadId: uploadId, PartNumber: part, CopySource, CopySourceRange: `bytes=${start}-${end}` }));
          parts.push({ ETag: r.CopyPartResult?.ETag ?? "", PartNumber: part });
        }
        await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: to, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
      } catch (err) {
        if (uploadId) await client.send(new AbortMultipartUploadCommand({ Bucket, Key: to, UploadId: uploadId })).catch(() => undefined);
        throw fail(err, `copy of ${from} to ${to}`);
      }
    },

    async head(key: string): Promise<ObjectHead | undefined> {
      try {
        const r = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
        return {
          key,
          size: r.ContentLength ?? 0,
          lastModified: r.LastModified ?? new Date(0),
          metadata: Object.fromEntries(Object.entries(r.Metadata ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
          ...(r.ContentType ? { contentType: r.ContentType } : {}),
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw fail(err, `HEAD ${key}`);
      }
    },

    async list(prefix: string): Promise<StoredObject[]> {
      const out: StoredObject[] = [];
      try {
        for await (const page of paginateListObjectsV2({ client, pageSize: 1000 }, { Bucket, Prefix: prefix })) {
          for (const o of page.Contents ?? []) {
            if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) });
          }
        }
      } catch (err) {
        throw fail(err, `listing ${prefix}`);
      }
      return out;
    },

    async get(key: string): Promise<ReadableStream<Uint8Array>> {
      try {
        const r = await client.send(new GetObjectCommand({ Bucket, Key: key }));
        if (!r.Body) throw new Error("empty response body");
        return r.Body.transformToWebStream() as ReadableStream<Uint8Array>;
      } catch (err) {
        throw fail(err, `GET ${key}`);
      }
    },

    async delete(keys: readonly string[]): Promise<DeleteResult> {
      const result: DeleteResult = { deleted: [], failed: [] };
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000);
        try {
          const r = await client.send(
            new DeleteObjectsCommand({ Bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
          );
          const failed = new Map((r.Errors ?? []).map((e) => [e.Key ?? "", `${e.Code ?? "Error"}: ${e.Message ?? ""}`]));
          for (const key of batch) {
            const message = failed.get(key);
            if (message) result.failed.push({ key, message });
            else result.deleted.push(key);
          }
        } catch (err) {
          if (errorName(err) !== "NotImplemented") throw fail(err, `deleting ${batch.length} object(s)`);
          // Servers without multi-object delete: one request per key.
          for (const key of batch) {
            try {
              await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
              result.deleted.push(key);
            } catch (e) {
              result.failed.push({ key, message: fail(e, `DELETE ${key}`).message });
            }
          }
        }
      }
      return result;
    },

    async presign(key: string, ttlSeconds: number, filename: string): Promise<string> {
      try {
        const command = new GetObjectCommand({
          Bucket,
          Key: key,
          ResponseContentDisposition: `attachment; filename="${filename.replace(/["\\]/g, "_")}"`,
        });
        const { getSignedUrl } = await import("@aws-sdk/s3-request-presigner");
        return await getSignedUrl(client, command, { expiresIn: ttlSeconds });
      } catch (err) {
        throw fail(err, `signing a link to ${key}`);
      }
    },

    async listUploads(prefix: string): Promise<PendingUpload[]> {
      const out: PendingUpload[] = [];
      let KeyMarker: string | undefined;
      let UploadIdMarker: string | undefined;
      try {
        for (;;) {
          const r = await client.send(new ListMultipartUploadsCommand({ Bucket, Prefix: prefix, KeyMarker, UploadIdMarker }));
          for (const u of r.Uploads ?? []) {
            if (u.Key?.startsWith(prefix) && u.UploadId) out.push({ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated ?? new Date(0) });
          }
          if (!r.IsTruncated) break;
          KeyMarker = r.NextKeyMarker;
          UploadIdMarker = r.NextUploadIdMarker;
        }
      } catch (err) {
        throw fail(err, `listing multipart uploads under ${prefix}`);
      }
      return out;
    },

    async abortUpload(upload: PendingUpload): Promise<void> {
      try {
        await client.send(new AbortMultipartUploadCommand({ Bucket, Key: upload.key, UploadId: upload.uploadId }));
      } catch (err) {
        if (isNotFound(err)) return; // already gone (NoSuchUpload)
        throw fail(err, `aborting the multipart upload of ${upload.key}`);
      }
    },

    async putSmall(key: string, body: string, opts: { contentType: string; ifAbsent?: boolean }): Promise<boolean> {
      try {
        await client.send(new PutObjectCommand({ Bucket, Key: key, Body: body, ContentType: opts.contentType, ...(opts.ifAbsent ? { IfNoneMatch: "*" } : {}) }));
        return true;
      } catch (err) {
        const status = httpStatus(err);
        if (opts.ifAbsent && (errorName(err) === "PreconditionFailed" || status === 412)) return false;
        // S3 answers 409 ConditionalRequestConflict while another conditional write to the key is in flight.
        if (opts.ifAbsent && (errorName(err) === "ConditionalRequestConflict" || status === 409)) return false;
        if (opts.ifAbsent && (errorName(err) === "NotImplemented" || status === 501)) {
          throw new BackupError("CONDITIONAL_WRITE_UNSUPPORTED", `${where} does not support conditional writes (If-None-Match: *)`, 501, { cause: err });
        }
        throw fail(err, `PUT ${key}`);
      }
    },

    async getSmall(key: string): Promise<string | undefined> {
      try {
        const r = await client.send(new GetObjectCommand({ Bucket, Key: key }));
        return (await r.Body?.transformToString("utf-8")) ?? "";
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw fail(err, `GET ${key}`);
      }
    },

    async abortUploads(key: string): Promise<number> {
      const mine = (await store.listUploads(key)).filter((u) => u.key === key);
      for (const u of mine) await store.abortUpload(u);
      return mine.length;
    },
  };

  async function cleanupFailedUpload(key: string): Promise<void> {
    await store.abortUploads(key).catch(() => 0);
    await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
  }

  return store;
}

function errorName(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "name" in err ? String((err as { name: unknown }).name) : undefined;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  return errorName(err) === "NotFound" || errorName(err) === "NoSuchKey" || httpStatus(err) === 404;
}
