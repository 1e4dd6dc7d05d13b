/**
 * A database stored as an object in an S3-compatible bucket (BACKUP_SOURCE=s3://bucket/key),
 * read with the same credentials and endpoint as the backup store. One GetObject: its
 * ContentLength decides the limit before any body byte is read, and the body streams into
 * a buffer of exactly that size, or through the streamed pipeline.
 *
 * A streamed body that breaks off (a long download's connection reset) continues with a
 * ranged GetObject pinned to the first response's ETag (`If-Match`), so every byte still
 * comes from one version of the object: if it was replaced meanwhile, S3 answers 412 and the
 * read is a SourceChanged, which the backup retries from the start.
 */
import { GetObjectCommand, type GetObjectCommandOutput, type S3Client } from "@aws-sdk/client-s3";
import type { S3Config } from "../config.js";
import { BackupError } from "../errors.js";
import { storeError } from "../store/s3-errors.js";
import { guardStream, readStream, rejectNonSqlite, type StreamProblem } from "./read-stream.js";
import { SourceChanged, type OpenOptions, type ReadOptions, type Source, type SourceImage, type SourceStream } from "./source.js";

export function s3Source(client: S3Client, bucket: string, key: string): Source {
  const origin = `s3://${bucket}/${key}`;

  function fail(err: unknown, action: string, store: S3Config): BackupError {
    const name = errorName(err);
    if (name === "NoSuchBucket") {
      return new BackupError("SOURCE_NOT_FOUND", `${origin} does not exist: there is no bucket "${bucket}" (BACKUP_SOURCE).`, 502, { cause: err });
    }
    if (name === "NoSuchKey" || name === "NotFound" || httpStatus(err) === 404) {
      return new BackupError("SOURCE_NOT_FOUND", `${origin} does not exist: there is no such object (BACKUP_SOURCE).`, 502, { cause: err });
    }
    return storeError(err, action, store);
  }

  function streamError(p: StreamProblem, store: S3Config): Error {
    switch (p.kind) {
      case "too-large":
        return new BackupError("SOURCE_TOO_LARGE", `${origin} is ${p.announced ? "" : "more than "}${p.bytes} bytes, over MAX_BYTES (${p.limit}).`, 413);
      case "wrong-length":
        return new BackupError(
          "SOURCE_UNREADABLE",
          `${origin}: object body was ${p.complete ? "" : "at least "}${p.bytes} bytes but its ContentLength said ${p.expected}.`,
          502,
        );
      case "failed": {
        const e = fail(p.cause, `reading ${origin} (after ${p.bytes} bytes)`, store);
        if (e.code === "STORE_UNREACHABLE" && p.bytes > 0) {
          // The server was reached; the body broke off (and could not be continued).
          return new BackupError("SOURCE_UNREADABLE", `${origin}: the download broke off after ${p.bytes}${p.expected !== undefined ? ` of ${p.expected}` : ""} bytes (${describe(p.cause)}) and could not be completed.`, 502, { cause: p.cause });
        }
        return e.code === "STORE_ERROR" ? new BackupError("SOURCE_UNREADABLE", e.message, 502, { cause: p.cause }) : e;
      }
    }
  }

  /** One GetObject: the body streams from it, so every byte comes from one version of the object. */
  async function get(): Promise<{ body: ReadableStream<Uint8Array> | undefined; size: number | undefined; etag: string | undefined; store: S3Config }> {
    const store = await describeStore(client, bucket);
    let response: GetObjectCommandOutput;
    try {
      response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      throw fail(err, `GET ${origin}`, store);
    }
    const size = response.ContentLength;
    const body = response.Body?.transformToWebStream() as ReadableStream<Uint8Array> | undefined;
    if (!body && size) throw new BackupError("SOURCE_UNREADABLE", `${origin}: the response had no body but its ContentLength said ${size}.`, 502);
    return { body, size, etag: response.ETag, store };
  }

  /** The rest of the object from byte `from`, only if it is still the version whose ETag is `etag`. */
  function resumeFrom(etag: string, size: number, store: S3Config) {
    return async (from: number, cause: unknown): Promise<ReadableStream<Uint8Array>> => {
      let response: GetObjectCommandOutput;
      try {
        response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${from}-`, IfMatch: etag }));
      } catch (err) {
        if (errorName(err) === "PreconditionFailed" || httpStatus(err) === 412) {
          throw new SourceChanged(`${origin} was replaced while it was read (the read broke off after ${from} bytes, and the object is no longer ETag ${etag})`);
        }
        const e = fail(err, `GET ${origin} (resuming after ${from} bytes: ${describe(cause)})`, store);
        throw e.code === "STORE_ERROR" ? new BackupError("SOURCE_UNREADABLE", e.message, 502, { cause: err }) : e;
      }
      const body = response.Body?.transformToWebStream() as ReadableStream<Uint8Array> | undefined;
      // A server that ignores Range would send the object from byte 0: only a 206 continues it.
      if (!body || response.ContentRange !== `bytes ${from}-${size - 1}/${size}`) {
        await body?.cancel().catch(() => undefined);
        throw new BackupError("SOURCE_UNREADABLE", `${origin}: the read broke off after ${from} bytes (${describe(cause)}), and the server did not continue it (Content-Range ${response.ContentRange ?? "missing"}).`, 502);
      }
      return body;
    };
  }

  return {
    origin,
    async read({ maxBytes, onProgress }: ReadOptions): Promise<SourceImage> {
      const { body, size, store } = await get();
      if (!body) return { bytes: new Uint8Array(0), origin };
      // With ContentLength over the limit, readStream cancels the body before reading any of it.
      const bytes = await readStream(body, {
        maxBytes,
        ...(size !== undefined ? { expectedBytes: size } : {}),
        ...(onProgress ? { onProgress } : {}),
        checkHead: rejectNonSqlite(origin),
        problem: (p) => streamError(p, store),
      });
      return { bytes, origin };
    },
    async open({ maxBytes }: OpenOptions): Promise<SourceStream> {
      const { body, size, etag, store } = await get();
      const stream = body
        ? guardStream(body, {
            maxBytes,
            ...(size !== undefined ? { expectedBytes: size } : {}),
            ...(size !== undefined && etag ? { resume: resumeFrom(etag, size, store) } : {}),
            checkHead: rejectNonSqlite(origin),
            problem: (p) => streamError(p, store),
          })
        : new ReadableStream<Uint8Array>({ start: (c) => c.close() });
      return { stream, ...(size !== undefined ? { bytes: size } : {}), settled: async () => ({}) };
    },
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

function errorName(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "name" in err ? String((err as { name: unknown }).name) : undefined;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** What storeError names in its messages (endpoint, region, bucket), read from the client itself. */
async function describeStore(client: S3Client, bucket: string): Promise<S3Config> {
  const config: S3Config = { region: "unknown", bucket, prefix: "", forcePathStyle: client.config.forcePathStyle ?? false };
  try {
    config.region = await client.config.region();
    if (client.config.isCustomEndpoint && client.config.endpoint) {
      const e = await client.config.endpoint();
      config.endpoint = `${e.protocol}//${e.hostname}${e.port ? `:${e.port}` : ""}${e.path === "/" ? "" : e.path}`;
    }
  } catch {
    // Only for the message; the error itself matters more.
  }
  return config;
}
