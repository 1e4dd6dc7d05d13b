/**
 * SKIP_UNCHANGED against the real store: an image identical to the newest backup is not
 * uploaded again and nothing is pruned; any change (content, or the format, e.g. a
 * different kind of object) uploads as usual.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { parseConfig } from "../src/config.js";
import { jsonLogger } from "../src/log.js";
import { createBackupService } from "../src/service.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { putBackup } from "./helpers/backups.js";
import { startFaultProxy } from "./helpers/fault-proxy.js";
import { sha256, writeDatabase } from "./helpers/db.js";
import { capturedLines } from "./helpers/log-capture.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let dir: string;
const logLines = capturedLines("skip-unchanged log");

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-skip-"));
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

async function service(env: Record<string, string>) {
  const config = parseConfig(s3.env(env), { maxBytes: NODE_MAX_BYTES });
  const runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), level: "debug" }));
  const store = createS3Store(config.s3);
  const source = createSource(config.source, { files: nodeFiles }, { readAttempts: config.readAttempts });
  return createBackupService({ config, runtime, store, source }, { holder: "test" });
}

describe("SKIP_UNCHANGED", () => {
  it("is off by default: the same image is uploaded every time", async () => {
    const path = join(dir, "always.db");
    await writeDatabase(path, { rows: 50 });
    const svc = await service({ BACKUP_SOURCE: path });
    const a = await svc.backup();
    const b = await svc.backup();
    expect(b.unchanged).toBeUndefined();
    expect(b.key).not.toBe(a.key);
    expect(await s3.keys("backups/always/")).toHaveLength(2);
  });

  it("skips an identical image: no upload, no prune, the manifest and status name the existing backup", async () => {
    const path = join(dir, "same.db");
    const image = await writeDatabase(path, { rows: 200 });
    // Three different earlier states, so that MAX_COUNT=1 would prune two of them.
    const svcMany = await service({ BACKUP_SOURCE: path, MAX_COUNT: "10" });
    await putBackup(s3, { name: "same", image: await writeDatabase(join(dir, "old1.db"), { rows: 10 }), time: new Date(Date.now() - 3_600_000) });
    await putBackup(s3, { name: "same", image: await writeDatabase(join(dir, "old2.db"), { rows: 20 }), time: new Date(Date.now() - 1_800_000) });
    const first = await svcMany.backup();
    expect(first.sha256).toBe(sha256(image));
    const before = await s3.keys("backups/same/");
    expect(before).toHaveLength(3);

    const svc = await service({ BACKUP_SOURCE: path, MAX_COUNT: "1", SKIP_UNCHANGED: "true" });
    const again = await svc.backup();
    expect(again).toMatchObject({ unchanged: true, key: first.key, file: first.file, sha256: first.sha256, gzipBytes: first.gzipBytes, pruned: [] });
    expect(await s3.keys("backups/same/")).toEqual(before);
    expect(svc.status().lastRun).toMatchObject({ ok: true, unchanged: true, key: first.key });
    expect(logLines.some((l) => l.includes("unchanged since the newest backup"))).toBe(true);

    // Another state of the database: a new backup, and now retention runs (MAX_COUNT=1 leaves only it).
    await writeDatabase(path, { rows: 201 });
    const changed = await svc.backup();
    expect(changed.unchanged).toBeUndefined();
    expect(changed.sha256).not.toBe(first.sha256);
    expect(changed.pruned).toHaveLength(3);
    expect(await s3.keys("backups/same/")).toEqual([changed.key]);
  });

  it("compares with the newest backup only, and its format too", async () => {
    const path = join(dir, "fmt.db");
    const image = await writeDatabase(path, { rows: 30 });
    // The newest backup has the same sha256 but another format: not the same backup.
    await putBackup(s3, { name: "fmt", image, metadata: { format: "sqlite3+gzip+other" } });
    const svc = await service({ BACKUP_SOURCE: path, SKIP_UNCHANGED: "true" });
    const m = await svc.backup();
    expect(m.unchanged).toBeUndefined();
    expect(await s3.keys("backups/fmt/")).toHaveLength(2);
    // …and now the newest is this tool's own: the next identical run is skipped.
    expect((await svc.backup()).unchanged).toBe(true);
  });

  it("a streamed file (CHECK=structure) that is unchanged is hashed first, and nothing is sent to the store but the comparison", async () => {
    const path = join(dir, "streamed.db");
    const image = await writeDatabase(path, { rows: 100, targetBytes: 2 * 1024 * 1024 });
    // Every request the runs make passes through a proxy that records it.
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const svc = await service({ BACKUP_SOURCE: path, CHECK: "structure", SKIP_UNCHANGED: "true", LOCK: "off", S3_ENDPOINT: proxy.endpoint });
      const first = await svc.backup();
      expect(first.unchanged).toBeUndefined();
      expect(first.sha256).toBe(sha256(image));
      const writes = () => proxy.requests.filter((r) => ["CreateMultipartUpload", "UploadPart", "PutObject", "CompleteMultipartUpload", "Other"].includes(r.op) && r.method !== "GET").length;
      const before = writes();
      expect(before).toBeGreaterThan(0);

      const again = await svc.backup();
      expect(again).toMatchObject({ unchanged: true, key: first.key, sha256: first.sha256, pageCount: first.pageCount, pruned: [] });
      expect(writes()).toBe(before);
      expect(await s3.keys("backups/streamed/")).toEqual([first.key]);
      expect(logLines.some((l) => l.includes("nothing uploaded, nothing pruned"))).toBe(true);

      await writeDatabase(path, { rows: 101, targetBytes: 2 * 1024 * 1024 });
      const changed = await svc.backup();
      expect(changed.unchanged).toBeUndefined();
      expect(writes()).toBeGreaterThan(before);
      expect(await s3.keys("backups/streamed/")).toHaveLength(2);
    } finally {
      await proxy.close();
    }
  });
});
