/**
 * Backup objects written straight to the test store, byte for byte as the contract
 * describes them (key pattern, gzip body, user metadata), and ways to damage one in place:
 * the same key and metadata with a different body, as a bit flip or a tampered upload
 * would leave it.
 */
import { gzipSync } from "node:zlib";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { buildKey } from "../../src/keys.js";
import { sha256 } from "./db.js";
import type { TestStore } from "./s3.js";

export interface PutBackupOptions {
  name: string;
  image: Uint8Array;
  /** Defaults to "backups/". */
  prefix?: string;
  time?: Date;
  /** Replaces the gzip of `image` as the object's body. */
  body?: Uint8Array;
  /** Merged over the correct metadata; `undefined` removes a field. */
  metadata?: Record<string, string | undefined>;
}

export function metadataOf(image: Uint8Array): Record<string, string> {
  const pageSize = ((image[16] ?? 0) << 8) | (image[17] ?? 0);
  return {
    sha256: sha256(image),
    bytes: String(image.length),
    "page-size": String(pageSize),
    "page-count": String(image.length / pageSize),
    "sqlite-version": "3.49.1",
    format: "sqlite3+gzip",
  };
}

let suffix = 0;

export async function putBackup(s3: TestStore, o: PutBackupOptions): Promise<{ key: string; file: string }> {
  const { key, file } = buildKey(o.prefix ?? "backups/", o.name, o.time ?? new Date(), suffix++ % 0x1000000);
  const metadata = Object.fromEntries(
    Object.entries({ ...metadataOf(o.image), ...o.metadata }).filter((e): e is [string, string] => e[1] !== undefined),
  );
  await s3.client.send(
    new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: o.body ?? gzipSync(o.image), ContentType: "application/gzip", Metadata: metadata }),
  );
  return { key, file };
}

/** Re-put `key` with the same metadata and `change(body)` as its body. */
export async function replaceBody(s3: TestStore, key: string, change: (body: Uint8Array) => Uint8Array): Promise<void> {
  const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
  const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  const body = await got.Body!.transformToByteArray();
  await s3.client.send(
    new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: change(body), ContentType: head.ContentType, Metadata: head.Metadata }),
  );
}

/** A copy with one byte in the middle of the deflate data inverted (gzip's CRC or inflate must reject it). */
export function flipMiddleByte(body: Uint8Array): Uint8Array {
  const out = body.slice();
  const at = Math.floor(out.length / 2);
  out[at] = out[at]! ^ 0xff;
  return out;
}
