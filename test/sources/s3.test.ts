/**
 * The S3 source against a real S3 server (in-process s3rver, or S3_TEST_* such as Swift):
 * objects read back exactly, and missing keys, oversized objects, wrong credentials and
 * non-databases fail with their own codes.
 */
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackupError } from "../../src/errors.js";
import { createSource } from "../../src/sources/index.js";
import { s3Source } from "../../src/sources/s3.js";
import { createS3Client } from "../../src/store/s3.js";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";
import { backupError } from "../helpers/errors.js";

let s3: TestStore;
let db: Uint8Array;
const KEY = "sources/app data/app.sqlite";

beforeAll(async () => {
  s3 = await startTestStore();
  db = await makeDatabase({ rows: 300, targetBytes: 3 * 1024 * 1024 });
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: KEY, Body: db }));
});
afterAll(async () => {
  await s3?.close();
});

async function failure(p: Promise<unknown>): Promise<BackupError> {
  const be = await backupError(p);
  if (s3.secretAccessKey !== s3.accessKeyId) expect(be.message).not.toContain(s3.secretAccessKey);
  return be;
}

describe("s3 source", () => {
  it("reads an object back exactly, with progress against its ContentLength", async () => {
    const progress: [number, number | undefined][] = [];
    const src = s3Source(s3.client, s3.bucket, KEY);
    expect(src.origin).toBe(`s3://${s3.bucket}/${KEY}`);
    const image = await src.read({ maxBytes: 2 ** 32 - 1, onProgress: (read, total) => progress.push([read, total]) });
    expect(image.bytes.length).toBe(db.length);
    expect(sha256(image.bytes)).toBe(sha256(db));
    expect(image.bytes.buffer.byteLength).toBe(db.length);
    expect(image.origin).toBe(src.origin);
    expect(progress.at(-1)).toEqual([db.length, db.length]);
  });

  it("accepts an object of exactly MAX_BYTES", async () => {
    const image = await s3Source(s3.client, s3.bucket, KEY).read({ maxBytes: db.length });
    expect(sha256(image.bytes)).toBe(sha256(db));
  });

  it("is what createSource builds for s3://bucket/key with the store's settings", async () => {
    const settings = {
      endpoint: s3.endpoint,
      region: s3.region,
      bucket: "the-backup-bucket-is-not-the-source-bucket",
      prefix: "backups/",
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      forcePathStyle: true,
    };
    const src = createSource({ kind: "s3", bucket: s3.bucket, key: KEY }, { s3: settings });
    expect(sha256((await src.read({ maxBytes: 2 ** 32 - 1 })).bytes)).toBe(sha256(db));
  });

  it("without S3 settings: SOURCE_UNSUPPORTED", () => {
    let err: unknown;
    try {
      createSource({ kind: "s3", bucket: s3.bucket, key: KEY }, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("SOURCE_UNSUPPORTED");
    expect((err as BackupError).status).toBe(500);
  });

  it("a missing key: SOURCE_NOT_FOUND naming s3://bucket/key", async () => {
    const err = await failure(s3Source(s3.client, s3.bucket, "sources/nope.sqlite").read({ maxBytes: 1e9 }));
    expect(err.code).toBe("SOURCE_NOT_FOUND");
    expect(err.status).toBe(502);
    expect(err.message).toContain(`s3://${s3.bucket}/sources/nope.sqlite`);
  });

  it("a missing bucket: SOURCE_NOT_FOUND saying so", async () => {
    const err = await failure(s3Source(s3.client, `no-such-bucket-${Date.now()}`, KEY).read({ maxBytes: 1e9 }));
    expect(err.code).toBe("SOURCE_NOT_FOUND");
    expect(err.message).toMatch(/no bucket "no-such-bucket-\d+"/);
  });

  it("an object over MAX_BYTES: SOURCE_TOO_LARGE from its ContentLength, reading nothing", async () => {
    const progress: number[] = [];
    const err = await failure(s3Source(s3.client, s3.bucket, KEY).read({ maxBytes: 1024 * 1024, onProgress: (n) => progress.push(n) }));
    expect(err.code).toBe("SOURCE_TOO_LARGE");
    expect(err.status).toBe(413);
    expect(err.message).toContain(`is ${db.length} bytes, over MAX_BYTES (${1024 * 1024})`);
    expect(progress).toEqual([]);
  });

  it("wrong credentials: STORE_AUTH", async () => {
    const wrong = createS3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      bucket: s3.bucket,
      prefix: "",
      accessKeyId: s3.accessKeyId,
      secretAccessKey: "definitely-wrong-secret",
      forcePathStyle: true,
    });
    try {
      const err = await failure(s3Source(wrong, s3.bucket, KEY).read({ maxBytes: 1e9 }));
      expect(err.code).toBe("STORE_AUTH");
      expect(err.status).toBe(502);
      expect(err.message).toContain(`GET s3://${s3.bucket}/${KEY}`);
      expect(err.message).toContain(s3.endpoint);
      expect(err.message).toMatch(/S3_SECRET_ACCESS_KEY/);
      expect(err.message).not.toContain("definitely-wrong-secret");
    } finally {
      wrong.destroy();
    }
  });

  it("an object that is not a database: NOT_SQLITE", async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: "sources/notes.txt", Body: "<html>not a database</html>\n".repeat(1000) }));
    const err = await failure(s3Source(s3.client, s3.bucket, "sources/notes.txt").read({ maxBytes: 1e9 }));
    expect(err.code).toBe("NOT_SQLITE");
    expect(err.status).toBe(422);
    expect(err.message).toContain(`s3://${s3.bucket}/sources/notes.txt is not a SQLite database`);
  });
});
