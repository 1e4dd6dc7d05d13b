/**
 * A database stored in an R2 bucket the Worker has a binding to (BACKUP_SOURCE=r2://BINDING/key).
 * Read like the S3 source (src/sources/s3.ts): one get, whose size decides the limit before
 * any body byte is read, streamed through guardStream. A body that breaks off continues with a
 * ranged get pinned to the first read's etag (`onlyIf: { etagMatches }`): if the object was
 * replaced meanwhile R2 returns the object's metadata without a body, and the read is a
 * SourceChanged, which the backup retries from the start.
 */
import { BackupError } from "../errors.js";
import type { R2BucketLike, R2ObjectBodyLike, R2ObjectLike } from "../store/r2.js";
import { guardStream, readStream, rejectNonSqlite, type StreamProblem } from "./read-stream.js";
import { SourceChanged, type OpenOptions, type ReadOptions, type Source, type SourceImage, type SourceStream } from "./source.js";

export function r2Source(bucket: R2BucketLike, binding: string, key: string): Source {
  const origin = `r2://${binding}/${key}`;

  const fail = (err: unknown, action: string): BackupError =>
    err instanceof BackupError ? err : new BackupError("SOURCE_UNREADABLE", `${action} failed: ${describe(err)}`, 502, { cause: err });

  function streamError(p: StreamProblem): Error {
    switch (p.kind) {
      case "too-large":
        return new BackupError("SOURCE_TOO_LARGE", `${origin} is ${p.announced ? "" : "more than "}${p.bytes} bytes, over MAX_BYTES (${p.limit}).`, 413);
      case "wrong-length":
        return new BackupError("SOURCE_UNREADABLE", `${origin}: object body was ${p.complete ? "" : "at least "}${p.bytes} bytes but its size said ${p.expected}.`, 502);
      case "failed":
        return p.cause instanceof SourceChanged || p.cause instanceof BackupError
          ? p.cause
          : new BackupError("SOURCE_UNREADABLE", `${origin}: the read broke off after ${p.bytes}${p.expected !== undefined ? ` of ${p.expected}` : ""} bytes (${describe(p.cause)}) and could not be completed.`, 502, { cause: p.cause });
    }
  }

  async function get(): Promise<R2ObjectBodyLike> {
    let object: R2ObjectBodyLike | R2ObjectLike | null;
    try {
      object = await bucket.get(key);
    } catch (err) {
      throw fail(err, `GET ${origin}`);
    }
    if (!object || !("body" in object)) throw new BackupError("SOURCE_NOT_FOUND", `${origin} does not exist: there is no such object in the bucket bound as ${binding} (BACKUP_SOURCE).`, 502);
    return object;
  }

  /** The rest of the object from byte `from`, only if it is still the version whose etag is `etag`. */
  function resumeFrom(etag: string, size: number) {
    return async (from: number, cause: unknown): Promise<ReadableStream<Uint8Array>> => {
      let object: R2ObjectBodyLike | R2ObjectLike | null;
      try {
        object = await bucket.get(key, { onlyIf: { etagMatches: etag }, range: { offset: from, length: size - from } });
      } catch (err) {
        throw fail(err, `GET ${origin} (resuming after ${from} bytes: ${describe(cause)})`);
      }
      if (!object) throw new SourceChanged(`${origin} was deleted while it was read (the read broke off after ${from} bytes)`);
      // A failed condition gives the object's metadata without a body.
      if (!("body" in object) || object.etag !== etag) {
        throw new SourceChanged(`${origin} was replaced while it was read (the read broke off after ${from} bytes, and the object is no longer etag ${etag})`);
      }
      return object.body;
    };
  }

  return {
    origin,
    async read({ maxBytes, onProgress }: ReadOptions): Promise<SourceImage> {
      const object = await get();
      const bytes = await readStream(object.body, {
        maxBytes,
        expectedBytes: object.size,
        ...(onProgress ? { onProgress } : {}),
        checkHead: rejectNonSqlite(origin),
        problem: streamError,
      });
      return { bytes, origin };
    },
    async open({ maxBytes }: OpenOptions): Promise<SourceStream> {
      const object = await get();
      const stream = guardStream(object.body, {
        maxBytes,
        expectedBytes: object.size,
        resume: resumeFrom(object.etag, object.size),
        checkHead: rejectNonSqlite(origin),
        problem: streamError,
      });
      return { stream, bytes: object.size, settled: async () => ({}) };
    },
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}
