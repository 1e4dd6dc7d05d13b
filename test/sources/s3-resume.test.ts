/**
 * An S3 source whose download breaks off mid-body (a proxy on 127.0.0.1 passes half the
 * response, then closes the connection) continues with a ranged GetObject pinned to the
 * first response's ETag: the bytes are exactly the object's; if the object was replaced
 * meanwhile, the read is a SourceChanged, and a backup starts over and stores the new
 * version whole — never half of each. Against a real S3 server (s3rver, or S3_TEST_* such
 * as Swift), which answers If-Match itself.
 */
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES } from "../../functions/node-runtime.js";
import { createBackupRunner } from "../../src/backup.js";
import { parseConfig } from "../../src/config.js";
import { jsonLogger } from "../../src/log.js";
import { createSource } from "../../src/sources/index.js";
import { RESUMES } from "../../src/sources/read-stream.js";
import { s3Source } from "../../src/sources/s3.js";
import { SourceChanged } from "../../src/sources/source.js";
import { createS3Client, createS3Store } from "../../src/store/s3.js";
import { verifyBackup } from "../../src/verify.js";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { backupError } from "../helpers/errors.js";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy.js";
import { capturedLines } from "../helpers/log-capture.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";

let s3: TestStore;
let proxy: FaultProxy;
let first: Uint8Array;
let second: Uint8Array;
const logLines = capturedLines("s3 resume log");

beforeAll(async () => {
  s3 = await startTestStore();
  proxy = await startFaultProxy(s3.endpoint);
  first = await makeDatabase({ rows: 200, targetBytes: 3 * 1024 * 1024 });
  second = await makeDatabase({ rows: 300, targetBytes: 4 * 1024 * 1024 });
  expect(sha256(first)).not.toBe(sha256(second));
});
afterAll(async () => {
  await proxy?.close();
  await s3?.close();
});

let n = 0;
async function freshObject(bytes: Uint8Array): Promise<string> {
  const key = `sources/resume-${n++}.sqlite`;
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: bytes }));
  return key;
}

const viaProxy = () =>
  createS3Client({ endpoint: proxy.endpoint, region: s3.region, bucket: s3.bucket, prefix: "", accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, forcePathStyle: true });

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const c of stream as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(c);
    total += c.byteLength;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

const gets = (key: string) => proxy.requests.filter((r) => r.op === "GetObject" && r.path.endsWith(key));

describe("s3 source: a download that breaks off", () => {
  it("continues where it broke, and the bytes are exactly the object's", async () => {
    const key = await freshObject(first);
    proxy.set([{ op: "GetObject", kind: "cut" }]);
    const client = viaProxy();
    try {
      const opened = await s3Source(client, s3.bucket, key).open({ maxBytes: NODE_MAX_BYTES });
      const bytes = await readAll(opened.stream);
      expect(bytes.byteLength).toBe(first.byteLength);
      expect(sha256(bytes)).toBe(sha256(first));
      // The first GET was cut; one more continued it.
      expect(gets(key).map((r) => r.fault ?? "ok")).toEqual(["cut", "ok"]);
    } finally {
      client.destroy();
    }
  });

  it("an object replaced before the read continues: SourceChanged, not a mix of two versions", async () => {
    const key = await freshObject(first);
    proxy.set([{ op: "GetObject", kind: "cut", before: async () => void (await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: second }))) }]);
    const client = viaProxy();
    try {
      const opened = await s3Source(client, s3.bucket, key).open({ maxBytes: NODE_MAX_BYTES });
      const err = await readAll(opened.stream).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SourceChanged);
      expect((err as Error).message).toContain(`s3://${s3.bucket}/${key} was replaced while it was read`);
      expect(gets(key).length).toBe(2);
    } finally {
      client.destroy();
    }
  });

  it(`gives up after ${RESUMES} continuations with SOURCE_UNREADABLE naming the object`, async () => {
    const key = await freshObject(first);
    proxy.set([{ op: "GetObject", kind: "cut", times: Infinity }]);
    const client = viaProxy();
    try {
      const opened = await s3Source(client, s3.bucket, key).open({ maxBytes: NODE_MAX_BYTES });
      const err = await backupError(readAll(opened.stream));
      expect(err.code).toBe("SOURCE_UNREADABLE");
      expect(err.message).toContain(`s3://${s3.bucket}/${key}`);
      expect(err.message).not.toContain(s3.secretAccessKey);
      expect(gets(key).length).toBe(1 + RESUMES);
    } finally {
      proxy.set([]);
      client.destroy();
    }
  });

  it("a streamed backup whose source is replaced mid-read starts over and stores the new version whole", async () => {
    const key = await freshObject(first);
    const name = `resume${n++}`;
    const runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), level: "debug" }));
    // CHECK=structure: the streamed pipeline, whatever the size.
    const config = parseConfig(s3.env({ BACKUP_SOURCE: `s3://${s3.bucket}/${key}`, BACKUP_NAME: name, S3_ENDPOINT: proxy.endpoint, CHECK: "structure", LOCK: "off" }), { maxBytes: NODE_MAX_BYTES });
    const store = createS3Store(config.s3);
    const source = createSource(config.source, { s3: config.s3 });
    proxy.set([{ op: "GetObject", kind: "cut", before: async () => void (await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: second }))) }]);
    const manifest = await createBackupRunner({ config, runtime, store, source }).run();
    expect(manifest.sha256).toBe(sha256(second));
    expect(manifest.bytes).toBe(second.byteLength);
    // Cut, continuation refused (412), then a whole new read.
    expect(gets(key).length).toBe(3);
    const proved = await verifyBackup(createS3Store(parseConfig(s3.env({ BACKUP_SOURCE: "/unused.db" }), { maxBytes: NODE_MAX_BYTES }).s3), runtime, manifest.key, { maxBytes: NODE_MAX_BYTES });
    expect(proved.integrity).toBe("ok");
    expect(await s3.uploads(`backups/${name}/`)).toEqual([]);
    expect((await s3.keys(`backups/${name}/`)).filter((k) => k.endsWith(".partial"))).toEqual([]);
  });
});
