/**
 * The service's bookkeeping around the lease: a store that fails before the backup proper
 * (while taking the lease) is a failed run in status and metrics; another instance holding
 * the lease is a skipped run, not a failure.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { parseConfig } from "../src/config.js";
import { createLock } from "../src/lock.js";
import { jsonLogger } from "../src/log.js";
import { createBackupService } from "../src/service.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { writeDatabase } from "./helpers/db.js";
import { backupError } from "./helpers/errors.js";
import { capturedLines } from "./helpers/log-capture.js";
import { closedPort } from "./helpers/receiver.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let dir: string;
const logLines = capturedLines("service log");

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-service-"));
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

async function service(env: Record<string, string>) {
  const config = parseConfig(env, { maxBytes: NODE_MAX_BYTES });
  const runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line) }));
  const store = createS3Store(config.s3);
  const svc = createBackupService({ config, runtime, store, source: createSource(config.source, { files: nodeFiles }) }, { holder: "test", lockSettleMs: 100 });
  return { svc, store, config };
}


describe("service around the lease", () => {
  it("a store that cannot be reached while taking the lease is a failed run: status and metrics say so", async () => {
    const path = join(dir, "down.db");
    await writeDatabase(path, { rows: 10 });
    const env = { ...s3.env({ BACKUP_SOURCE: path, S3_MAX_ATTEMPTS: "1", S3_TIMEOUT_SECONDS: "2" }), S3_ENDPOINT: `http://127.0.0.1:${await closedPort()}` };
    const { svc } = await service(env);
    const e = await backupError(svc.backup());
    expect(e.code).toBe("STORE_UNREACHABLE");
    expect(svc.status()).toMatchObject({ running: false, lastRun: { ok: false, error: { code: "STORE_UNREACHABLE" } } });
    expect(svc.metrics.render()).toMatch(/^sqlite_backup_runs_total\{name="down",result="failure"\} 1$/m);
    expect(svc.metrics.render()).toMatch(/^sqlite_backup_running\{name="down"\} 0$/m);
  });

  it("another instance holding the lease: 409, counted as skipped, lastRun untouched, not running", async () => {
    const path = join(dir, "busy.db");
    await writeDatabase(path, { rows: 10 });
    const { svc, store, config } = await service(s3.env({ BACKUP_SOURCE: path }));
    await svc.backup();
    const before = svc.status().lastRun;
    const other = createLock({ store, prefix: config.s3.prefix, name: "busy", mode: "auto", ttlMs: 30_000, settleMs: 100, owner: "other", holder: "other host pid 9", now: () => new Date(), logger: jsonLogger({ write: (l) => logLines.push(l) }) });
    const held = await other.acquire();
    const e = await backupError(svc.backup());
    expect(e.code).toBe("BACKUP_RUNNING");
    expect(e.message).toContain("other host pid 9");
    expect(svc.status().lastRun).toEqual(before);
    expect(svc.status().running).toBe(false);
    expect(svc.metrics.render()).toMatch(/^sqlite_backup_runs_total\{name="busy",result="skipped"\} 1$/m);
    expect(svc.metrics.render()).toMatch(/^sqlite_backup_running\{name="busy"\} 0$/m);
    await held.release();
    await svc.backup();
    expect(svc.metrics.render()).toMatch(/^sqlite_backup_runs_total\{name="busy",result="success"\} 2$/m);
  });
});
