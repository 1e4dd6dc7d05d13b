/**
 * Where backups live. Modelled on Litestream's replica client: a handful of object
 * operations, so the pipeline does not care whether the store is S3, R2 or MinIO.
 */
export interface StoredObject {
  key: string;
  size: number;
  lastModified: Date;
}

export interface ObjectHead extends StoredObject {
  /** User metadata (x-amz-meta-*), keys lowercase. */
  metadata: Record<string, string>;
  contentType?: string;
}

export interface UploadOptions {
  metadata: Record<string, string>;
  contentType: string;
  contentDisposition: string;
  /** Bytes of the body sent so far. */
  onProgress?: (uploaded: number) => void;
}

export interface PendingUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

export interface DeleteResult {
  deleted: string[];
  failed: { key: string; message: string }[];
}

export interface BackupStore {
  /** "s3://bucket at https://endpoint", for messages; no secrets. */
  readonly description: string;
  /**
   * Whether `presign` can sign links (false for an R2 binding, which has no credentials);
   * unset means it can. Where links are served from follows it.
   */
  readonly canPresign?: boolean;
  /**
   * Stream `body` to `key`. On failure nothing is left behind: the multipart upload is
   * aborted and no object exists under `key`.
   */
  upload(key: string, body: ReadableStream<Uint8Array>, options: UploadOptions): Promise<void>;
  /**
   * Server-side copy of `from` to `to` with new metadata and headers (no bytes pass through
   * this process). How a streamed backup gets the sha256 that is only known at its end.
   * `size` is the object's size (large objects are copied in parts).
   */
  copy(from: string, to: string, size: number, options: Omit<UploadOptions, "onProgress">): Promise<void>;
  head(key: string): Promise<ObjectHead | undefined>;
  /** Every object under `prefix`, following pagination. */
  list(prefix: string): Promise<StoredObject[]>;
  get(key: string): Promise<ReadableStream<Uint8Array>>;
  delete(keys: readonly string[]): Promise<DeleteResult>;
  /** A GET URL valid for `ttlSeconds` that downloads as `filename` (PRESIGN_UNSUPPORTED when canPresign is false). */
  presign(key: string, ttlSeconds: number, filename: string): Promise<string>;
  /** Unfinished multipart uploads whose key starts with `prefix`. */
  listUploads(prefix: string): Promise<PendingUpload[]>;
  abortUpload(upload: PendingUpload): Promise<void>;
  /** Abort unfinished multipart uploads of exactly `key`; returns how many. */
  abortUploads(key: string): Promise<number>;
  /**
   * Write a small object in one request. With `ifAbsent`, only if nothing exists at `key`
   * (`If-None-Match: *`): false when something does. A server that refuses the condition
   * fails with CONDITIONAL_WRITE_UNSUPPORTED; one that ignores it returns true regardless.
   */
  putSmall(key: string, body: string, options: { contentType: string; ifAbsent?: boolean }): Promise<boolean>;
  /** A small object's text, or undefined when there is none. */
  getSmall(key: string): Promise<string | undefined>;
}
