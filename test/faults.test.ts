/**
 * Backups through a fault-injecting proxy in front of the real S3 server: every scenario ends
 * in a verified backup (a transient fault, retried) or a clean failure (a persistent one),
 * and afterwards no multipart upload is left, every earlier backup is still there, and every
 * object in the folder proves itself (sha256 and integrity_check).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { CreateMultipartUploadCommand } from "@aws-sdk/client-s3";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createBackupRunner, type Manifest } from "../src/backup.js";
import { parseConfig } from "../src/config.js";
import { BackupError } from "../src/errors.js";
import { jsonLogger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { verifyBackup } from "../src/verify.js";
import { writeDatabase } from "./helpers/db.js";
import { startFaultProxy, type Fault, type FaultKind, type FaultProxy, type S3Operation } from "./helpers/fault-proxy.js";
import { capturedLines } from "./helpers/log-capture.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let proxy: FaultProxy;
let runtime: Runtime;
let dir: string;
let dbPath: string;
const logLines = capturedLines("backup log");

beforeAll(async () => {
  s3 = await startTestStore();
  proxy = await startFaultProxy(s3.endpoint);
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), level: "debug" }));
  dir = await mkdtemp(join(tmpdir(), "seb-faults-"));
  dbPath = join(dir, "app.db");
  // Random blobs: ~12 MiB compressed, so the upload has three parts.
  await writeDatabase(dbPath, { rows: 50, targetBytes: 12 * 1024 * 1024 });
});
afterAll(async () => {
  await proxy?.close();
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
/** A backup runner for a fresh name whose requests go through the proxy. */
function through(extra: Record<string, string> = {}, rt: Runtime = runtime) {
  const name = `f${n++}`;
  // Short timeouts keep the stall cases quick; a stall must still end in a retry or an error.
  const config = parseConfig(s3.env({ BACKUP_SOURCE: dbPath, BACKUP_NAME: name, S3_ENDPOINT: proxy.endpoint, S3_TIMEOUT_SECONDS: "1", S3_MAX_ATTEMPTS: "3", ...extra }), {
    maxBytes: NODE_MAX_BYTES,
  });
  const store = createS3Store(config.s3);
  const source = createSource(config.source, { files: nodeFiles });
  return { name, config, store, runner: createBackupRunner({ config, runtime: rt, store, source }) };
}

/** The store without the proxy, to look at what really is in the bucket. */
function direct() {
  const config = parseConfig(s3.env({ BACKUP_SOURCE: dbPath }), { maxBytes: NODE_MAX_BYTES });
  return createS3Store(config.s3);
}

async function expectIntact(name: string, mustExist: string[]): Promise<string[]> {
  const store = direct();
  expect(await s3.uploads(`backups/${name}/`)).toEqual([]);
  const keys = await s3.keys(`backups/${name}/`);
  for (const key of mustExist) expect(keys).toContain(key);
  for (const key of keys) {
    const proved = await verifyBackup(store, runtime, key, { maxBytes: NODE_MAX_BYTES });
    expect(proved.integrity).toBe("ok");
  }
  return keys;
}

async function expectIntactObjects(name: string, mustExist: string[]): Promise<void> {
  const store = direct();
  const keys = await s3.keys(`backups/${name}/`);
  for (const key of mustExist) expect(keys).toContain(key);
  for (const key of keys) expect((await verifyBackup(store, runtime, key, { maxBytes: NODE_MAX_BYTES })).integrity).toBe("ok");
}

async function outcome(run: () => Promise<Manifest>): Promise<Manifest | BackupError> {
  return run().catch((err: unknown) => {
    expect(err).toBeInstanceOf(BackupError);
    return err as BackupError;
  });
}

const UPLOAD_OPS: { op: S3Operation; part?: number }[] = [
  { op: "CreateMultipartUpload" },
  { op: "UploadPart", part: 2 },
  { op: "CompleteMultipartUpload" },
  { op: "HeadObject" },
];
const PRUNE_OPS: S3Operation[] = ["ListObjectsV2", "DeleteObjects"];
const TRANSIENT: FaultKind[] = ["503", "500", "reset", "stall"];

describe("transient faults are retried and end in a verified backup", () => {
  for (const { op, part } of UPLOAD_OPS) {
    for (const kind of TRANSIENT) {
      it(`${kind} once on ${op}${part ? ` ${part}` : ""}`, async () => {
        const t = through();
        proxy.set([]);
        const earlier = await t.runner.run();
        const fault: Fault = { op, kind, ...(part ? { part } : {}) };
        proxy.set([fault]);
        const before = proxy.injected();
        const result = await outcome(() => t.runner.run());
        expect(proxy.injected() - before, "the fault was injected").toBe(1);
        expect(result, result instanceof BackupError ? `${result.code}: ${result.message}` : "").not.toBeInstanceOf(BackupError);
        const keys = await expectIntact(t.name, [earlier.key, (result as Manifest).key]);
        expect(keys).toHaveLength(2);
      });
    }
  }
  for (const op of PRUNE_OPS) {
    it(`503 once on ${op} during prune: retried, the old backup is pruned`, async () => {
      const t = through({ MAX_COUNT: "1" });
      proxy.set([]);
      const earlier = await t.runner.run();
      proxy.set([{ op, kind: "503" }]);
      const m = await t.runner.run();
      expect(m.pruned).toEqual([earlier.key]);
      expect(m.pruneError).toBeUndefined();
      expect(await expectIntact(t.name, [m.key])).toEqual([m.key]);
    });
  }
});

describe("persistent faults fail cleanly: no object under the failed key, no upload left, earlier backups kept", () => {
  for (const { op, part } of UPLOAD_OPS) {
    for (const kind of ["500", "reset"] as const) {
      it(`${kind} always on ${op}${part ? ` ${part}` : ""}`, async () => {
        const t = through({ MAX_COUNT: "1" });
        proxy.set([]);
        const earlier = await t.runner.run();
        proxy.set([{ op, kind, times: Infinity, ...(part ? { part } : {}) }]);
        const result = await outcome(() => t.runner.run());
        proxy.set([]);
        expect(result).toBeInstanceOf(BackupError);
        const err = result as BackupError;
        expect(err.status).toBeGreaterThanOrEqual(500);
        expect(err.message).not.toContain(s3.secretAccessKey === "S3RVER" ? "\u0000" : s3.secretAccessKey);
        // MAX_COUNT 1: had prune run after the failure, the earlier backup would be gone.
        expect(await expectIntact(t.name, [earlier.key])).toEqual([earlier.key]);
      });
    }
  }

  it("a stall on every CompleteMultipartUpload ends within the timeouts, cleanly", async () => {
    const t = through();
    proxy.set([]);
    const earlier = await t.runner.run();
    proxy.set([{ op: "CompleteMultipartUpload", kind: "stall", times: Infinity }]);
    const started = Date.now();
    const result = await outcome(() => t.runner.run());
    proxy.set([]);
    expect(result).toBeInstanceOf(BackupError);
    // 3 attempts × 1 s plus backoff: seconds, not forever.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await expectIntact(t.name, [earlier.key])).toEqual([earlier.key]);
  });

  for (const op of PRUNE_OPS) {
    it(`500 always on ${op} during prune: the new backup is kept and the failure reported`, async () => {
      const t = through({ MAX_COUNT: "1" });
      proxy.set([]);
      const earlier = await t.runner.run();
      proxy.set([{ op, kind: "500", times: Infinity }]);
      const m = await t.runner.run();
      proxy.set([]);
      expect(m.pruned).toEqual([]);
      expect(m.pruneError).toMatch(/InternalError|internal error|500|could not delete/i);
      expect(await expectIntact(t.name, [earlier.key, m.key])).toHaveLength(2);
    });
  }

  it("a corrupted read-back (VERIFY=full) fails the run and removes the unproved object", async () => {
    const t = through({ VERIFY: "full", MAX_COUNT: "1" });
    proxy.set([]);
    const earlier = await t.runner.run();
    proxy.set([{ op: "GetObject", kind: "corrupt", times: Infinity }]);
    const result = await outcome(() => t.runner.run());
    proxy.set([]);
    expect(result).toBeInstanceOf(BackupError);
    expect((result as BackupError).code).toBe("VERIFY_FAILED");
    expect(await expectIntact(t.name, [earlier.key])).toEqual([earlier.key]);
  });
});

describe("uploads left behind when even the abort fails", () => {
  it("are aborted by a later run once older than 3 hours; fresh ones and keys that are not ours are left alone", async () => {
    const t = through();
    proxy.set([]);
    const earlier = await t.runner.run();
    proxy.set([
      { op: "UploadPart", kind: "500", times: Infinity },
      { op: "AbortMultipartUpload", kind: "500", times: Infinity },
    ]);
    const failed = await outcome(() => t.runner.run());
    proxy.set([]);
    expect(failed).toBeInstanceOf(BackupError);
    const folder = `backups/${t.name}/`;
    const orphans = await s3.uploads(folder);
    expect(orphans, "the failed abort left the upload").toHaveLength(1);
    await s3.client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: `${folder}notes.txt` }));

    // A run now: the orphan is fresh (it may be a backup still running elsewhere).
    const soon = await t.runner.run();
    expect(soon.abortedUploads).toEqual([]);
    expect(await s3.uploads(folder)).toHaveLength(2);

    // A run four hours later: the orphan is stale and is aborted; notes.txt is not ours.
    const later: Runtime = { ...runtime, now: () => new Date(Date.now() + 4 * 60 * 60 * 1000) };
    const m = await through({ BACKUP_NAME: t.name }, later).runner.run();
    expect(m.abortedUploads).toEqual([orphans[0]!.split("#")[0]]);
    expect((await s3.uploads(folder)).map((u) => u.split("#")[0])).toEqual([`${folder}notes.txt`]);
    await expectIntactObjects(t.name, [earlier.key, soon.key, m.key]);
  });
});

describe("permanent errors are not retried", () => {
  it("wrong credentials fail on the first request with STORE_AUTH", async () => {
    const t = through({ S3_SECRET_ACCESS_KEY: "definitely-wrong-secret-key" });
    const seen = proxy.requests.length;
    const result = await outcome(() => t.runner.run());
    expect(result).toBeInstanceOf(BackupError);
    expect((result as BackupError).code).toBe("STORE_AUTH");
    const sent = proxy.requests.slice(seen);
    // One CreateMultipartUpload, refused with 403, not retried; then only the cleanup calls.
    expect(sent.filter((r) => r.op === "CreateMultipartUpload")).toHaveLength(1);
  });
});

describe("logs", () => {
  it("never contain the secret key", () => {
    expect(logLines.length).toBeGreaterThan(0);
    if (s3.secretAccessKey !== s3.accessKeyId) expect(logLines.join("\n")).not.toContain(s3.secretAccessKey);
  });
});
