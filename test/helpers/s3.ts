/**
 * The S3 server a test file runs against: the external one named by S3_TEST_* (Swift in CI)
 * or, by default, an in-process @20minutes/s3rver on 127.0.0.1. Each call gets its own
 * bucket, so test files never see each other's objects.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { startEmbeddedS3 } from "../../functions/embedded-s3.js";
import { createS3Client } from "../../src/store/s3.js";

export interface TestStore {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  external: boolean;
  client: S3Client;
  /** Environment for the tool pointing at this store (merge your own variables over it). */
  env(extra?: Record<string, string>): Record<string, string>;
  keys(prefix?: string): Promise<string[]>;
  uploads(prefix?: string): Promise<string[]>;
  close(): Promise<void>;
}

let counter = 0;

export async function startTestStore(): Promise<TestStore> {
  const bucket = `test-${process.pid}-${Date.now().toString(36)}-${counter++}`;
  let server: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string; close(): Promise<void> };
  let external = false;
  if (process.env.S3_TEST_ENDPOINT) {
    external = true;
    server = {
      endpoint: process.env.S3_TEST_ENDPOINT,
      region: process.env.S3_TEST_REGION ?? "us-east-1",
      accessKeyId: process.env.S3_TEST_ACCESS_KEY_ID ?? "",
      secretAccessKey: process.env.S3_TEST_SECRET_ACCESS_KEY ?? "",
      close: async () => {},
    };
  } else {
    const dir = await mkdtemp(join(tmpdir(), "seb-s3-"));
    const embedded = await startEmbeddedS3({ directory: dir, bucket });
    server = {
      ...embedded,
      close: async () => {
        await embedded.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  const client = createS3Client({
    endpoint: server.endpoint,
    region: server.region,
    bucket,
    prefix: "",
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    forcePathStyle: true,
  });
  if (external) await client.send(new CreateBucketCommand({ Bucket: bucket }));

  return {
    ...server,
    bucket,
    external,
    client,
    env: (extra = {}) => ({
      S3_ENDPOINT: server.endpoint,
      S3_REGION: server.region,
      S3_BUCKET: bucket,
      S3_ACCESS_KEY_ID: server.accessKeyId,
      S3_SECRET_ACCESS_KEY: server.secretAccessKey,
      ...extra,
    }),
    async keys(prefix = "") {
      const out: string[] = [];
      let token: string | undefined;
      do {
        const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        out.push(...(r.Contents ?? []).map((o) => o.Key ?? ""));
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return out.sort();
    },
    async uploads(prefix = "") {
      const r = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
      return (r.Uploads ?? []).map((u) => `${u.Key}#${u.UploadId}`);
    },
    async close() {
      client.destroy();
      await server.close();
    },
  };
}
