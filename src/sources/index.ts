/**
 * BACKUP_SOURCE → a Source. Runtime capabilities (a file system on Node, fetch, the S3
 * settings) are passed in; a runtime without one gets a clear error instead of a missing import.
 */
import type { S3Config, SourceSpec } from "../config.js";
import { BackupError } from "../errors.js";
import type { R2BucketLike } from "../store/r2.js";
import type { SqlJsStatic } from "sql.js";
import { createS3Client } from "../store/s3.js";
import { d1Source } from "./d1.js";
import { fileSource, type FileAccess } from "./file.js";
import { r2Source } from "./r2.js";
import { s3Source } from "./s3.js";
import type { Source } from "./source.js";
import { urlSource } from "./url.js";

export interface SourceCapabilities {
  files?: FileAccess;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Endpoint, region and credentials for s3:// sources (the bucket comes from BACKUP_SOURCE). */
  s3?: S3Config;
  /** The Worker's R2 binding of that name, for r2:// sources (throws a BackupError naming it when there is none). */
  r2?: (binding: string) => R2BucketLike;
  /** For d1:// sources: sql.js builds the image from the export's SQL. */
  sqlite?: SqlJsStatic;
  /** For d1:// sources: the token, the API's base URL and this runtime's limit on the dump. */
  d1?: { apiToken?: string; apiBase?: string; maxDumpBytes: number };
}

// Called through a wrapper: on Workers, a detached `fetch` called with the wrong `this` throws "Illegal invocation".
const globalFetch: typeof fetch = (input, init) => globalThis.fetch(input, init);

export interface SourceSettings {
  /** READ_ATTEMPTS: reads of a file that keeps changing before giving up. */
  readAttempts?: number;
}

export function createSource(spec: SourceSpec, caps: SourceCapabilities, settings: SourceSettings = {}): Source {
  switch (spec.kind) {
    case "file":
      if (!caps.files) {
        throw new BackupError("SOURCE_UNSUPPORTED", "BACKUP_SOURCE is a file path, but this runtime has no file system: use an http(s):// or s3:// source.", 500);
      }
      return fileSource(caps.files, spec.path, settings.readAttempts === undefined ? {} : { attempts: settings.readAttempts });
    case "url":
      return urlSource(caps.fetch ?? globalFetch, spec.url, spec.headers);
    case "s3":
      if (!caps.s3) {
        throw new BackupError("SOURCE_UNSUPPORTED", "BACKUP_SOURCE is an s3:// URL, but no S3 settings were passed to read it with.", 500);
      }
      return s3Source(createS3Client({ ...caps.s3, bucket: spec.bucket }), spec.bucket, spec.key);
    case "r2":
      if (!caps.r2) {
        throw new BackupError("SOURCE_UNSUPPORTED", `BACKUP_SOURCE is an r2:// URL, which only a Cloudflare Worker with an R2 binding named ${spec.binding} can read: use s3:// with R2's S3 API endpoint here.`, 500);
      }
      return r2Source(caps.r2(spec.binding), spec.binding, spec.key);
    case "d1":
      if (!caps.sqlite || !caps.d1?.apiToken) {
        throw new BackupError("SOURCE_UNSUPPORTED", "BACKUP_SOURCE is a d1:// database, but CLOUDFLARE_API_TOKEN (or sql.js) was not passed to read it with.", 500);
      }
      return d1Source(caps.fetch ?? globalFetch, caps.sqlite, {
        accountId: spec.accountId,
        databaseId: spec.databaseId,
        token: caps.d1.apiToken,
        maxDumpBytes: caps.d1.maxDumpBytes,
        ...(caps.d1.apiBase ? { apiBase: caps.d1.apiBase } : {}),
      });
  }
}
