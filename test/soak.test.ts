/**
 * The fault soak: up to 200 backups of a multipart-sized database through the fault proxy in
 * seeded random mode (a fixed seed, ~12% of requests failed with 500, 503 SlowDown, a reset,
 * a stall or a corrupted response), with a 1 s timeout and 2 attempts per request, so that
 * most runs succeed after retries and some fail. MAX_COUNT 5 keeps prune running through the
 * faults. After every run: no multipart upload left, and no backup lost that retention had
 * to keep; at the end every object left proves itself (sha256 and integrity_check).
 * A wall-clock budget bounds it: past it the soak stops early and says how many runs it made.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createBackupRunner } from "../src/backup.js";
import { parseConfig } from "../src/config.js";
import { BackupError, type ErrorCode } from "../src/errors.js";
import { jsonLogger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store, MIN_PART_SIZE } from "../src/store/s3.js";
import { verifyBackup } from "../src/verify.js";
import { writeDatabase } from "./helpers/db.js";
import { startFaultProxy, type FaultProxy } from "./helpers/fault-proxy.js";
import { capturedLines } from "./helpers/log-capture.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

const RUNS = 200;
// Enough for 200 runs on 2 cores busy with the rest of the suite (~0.5–0.8 s each); a hung run still ends it.
const BUDGET_MS = 240_000;
const SEED = 0x5eb0a4;
const MAX_COUNT = 5;
const FULL_EVERY = 4;
const NAME = "soak";
const FOLDER = `backups/${NAME}/`;
/** What a run may fail with when the store misbehaves; anything else is a bug. */
const STORE_CODES: readonly ErrorCode[] = ["STORE_UNREACHABLE", "STORE_ERROR", "UPLOAD_FAILED", "VERIFY_FAILED"];

let s3: TestStore;
let proxy: FaultProxy;
let runtime: Runtime;
let dir: string;
let dbPath: string;
const logLines = capturedLines("soak backup log");

beforeAll(async () => {
  s3 = await startTestStore();
  proxy = await startFaultProxy(s3.endpoint);
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), secrets: [s3.secretAccessKey] }));
  dir = await mkdtemp(join(tmpdir(), "seb-soak-"));
  dbPath = join(dir, "app.db");
  // Random blobs do not compress: the gzip is larger than one part, so every run is a multipart upload.
  await writeDatabase(dbPath, { rows: 20, targetBytes: MIN_PART_SIZE + 512 * 1024 });
});
afterAll(async () => {
  await proxy?.close();
  await s3?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("soak: backups through seeded random store faults", () => {
  it(`${RUNS} runs: every run verified or failed cleanly; nothing corrupt, orphaned or lost`, { timeout: BUDGET_MS + 90_000 }, async () => {
    const configOf = (verify: "head" | "full") =>
      parseConfig(
        s3.env({
          BACKUP_SOURCE: dbPath,
          BACKUP_NAME: NAME,
          S3_ENDPOINT: proxy.endpoint,
          S3_TIMEOUT_SECONDS: "1",
          S3_MAX_ATTEMPTS: "2",
          MAX_COUNT: String(MAX_COUNT),
          VERIFY: verify,
          GZIP_LEVEL: "1",
        }),
        { maxBytes: NODE_MAX_BYTES },
      );
    // One store for the whole soak, as a long-running server has: the SDK's retry quota
    // carries over from run to run. Every FULL_EVERY-th run reads its upload back (VERIFY=full,
    // where a corrupted GetObject must fail the run); the others check the HEAD only, which
    // keeps the soak's time down.
    const store = createS3Store(configOf("head").s3);
    const runners = (["head", "full"] as const).map((verify) => {
      const config = configOf(verify);
      return createBackupRunner({ config, runtime, store, source: createSource(config.source, { files: nodeFiles }) });
    });
    const direct = createS3Store(parseConfig(s3.env({ BACKUP_SOURCE: dbPath }), { maxBytes: NODE_MAX_BYTES }).s3);

    proxy.random({ seed: SEED, probability: 0.12, mix: { "500": 2, "503": 2, reset: 2, stall: 1, corrupt: 2 } });
    const started = Date.now();
    const succeeded: string[] = [];
    const failures = new Map<string, number>();
    const problems: string[] = [];
    let orphaned = 0;
    let lost = new Set<string>();
    let runs = 0;
    let gzipBytes = 0;

    while (runs < RUNS && Date.now() - started < BUDGET_MS) {
      runs++;
      try {
        const m = await runners[runs % FULL_EVERY === 0 ? 1 : 0]!.run();
        succeeded.push(m.key);
        gzipBytes = m.gzipBytes;
      } catch (err) {
        if (!(err instanceof BackupError)) {
          problems.push(`run ${runs}: not a BackupError: ${String(err)}`);
        } else {
          failures.set(err.code, (failures.get(err.code) ?? 0) + 1);
          if (!STORE_CODES.includes(err.code) || err.status < 500) problems.push(`run ${runs}: unexpected ${err.code} (${err.status}): ${err.message}`);
        }
      }

      // Seen through the unfaulted client: what is really in the bucket now.
      const uploads = await s3.uploads(FOLDER);
      orphaned += uploads.length;
      if (uploads.length) problems.push(`run ${runs}: multipart upload(s) left: ${uploads.join(", ")}`);
      const present = new Set(await s3.keys(FOLDER));
      lost = new Set([...lost, ...missingKept(succeeded, present)]);
    }
    const seconds = Math.round((Date.now() - started) / 1000);
    proxy.random(undefined);

    // Every object left, whatever run wrote it, proves itself.
    const remaining = await s3.keys(FOLDER);
    let corrupt = 0;
    for (const key of remaining) {
      const proved = await verifyBackup(direct, runtime, key, { maxBytes: NODE_MAX_BYTES }).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      if (proved instanceof Error || proved.integrity !== "ok") {
        corrupt++;
        problems.push(`${key} does not verify: ${proved instanceof Error ? proved.message : proved.integrity}`);
      }
    }
    const leftByFailedRuns = remaining.filter((k) => !succeeded.includes(k)).length;

    const counts = proxy.counts();
    const failed = runs - succeeded.length;
    const list = (entries: [string, number | undefined][]) => entries.map(([k, n]) => `${k} ${n}`).join(", ");
    console.log(
      `soak: ${runs} backups${runs < RUNS ? ` (stopped at the ${BUDGET_MS / 1000} s budget)` : ""}, ${succeeded.length} verified, ` +
        `${failed} failed cleanly (${list([...failures])}), ${counts.total} faults injected (${list(Object.entries(counts.byKind))}), ` +
        `${corrupt} corrupt, ${orphaned} orphaned, ${lost.size} lost, ${remaining.length} objects left (${leftByFailedRuns} by failed runs), ` +
        `${(gzipBytes / 1024 / 1024).toFixed(1)} MiB each, ${seconds} s`,
    );

    expect(problems).toEqual([]);
    expect(corrupt).toBe(0);
    expect(orphaned).toBe(0);
    expect([...lost]).toEqual([]);
    expect(gzipBytes, "each backup is a multipart upload").toBeGreaterThan(MIN_PART_SIZE);
    expect(succeeded.length, "some runs succeeded").toBeGreaterThan(0);
    expect(failed, "some runs failed").toBeGreaterThan(0);
    expect(succeeded.length, "most runs succeeded").toBeGreaterThan(failed);
    expect(counts.total).toBeGreaterThan(runs);
    for (const kind of ["500", "503", "reset", "stall", "corrupt"] as const) expect(counts.byKind[kind], kind).toBeGreaterThan(0);
    // The newest successful backup is never pruned: it is present at the end.
    if (succeeded.length) expect(remaining).toContain(succeeded.at(-1));
  });
});

/**
 * Successful backups missing although retention had to keep them. Prune deletes a backup only
 * when MAX_COUNT newer ones are listed, and those are deleted in turn only when MAX_COUNT newer
 * still exist; so a missing backup with fewer than MAX_COUNT newer objects present was lost.
 * Keys order by time (fixed-width UTC timestamp after the name).
 */
function missingKept(succeeded: readonly string[], present: ReadonlySet<string>): string[] {
  const ordered = [...present].sort();
  return succeeded.filter((key) => !present.has(key) && ordered.filter((k) => k > key).length < MAX_COUNT);
}
