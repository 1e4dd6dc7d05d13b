/**
 * GFS retention end to end: real backups of a real SQLite file into a real S3 server, one run
 * per simulated day (the runtime's clock is moved, nothing else is substituted), each run
 * pruning as it goes. What is left must be what the rules say for the whole history.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createBackupRunner, type Manifest } from "../src/backup.js";
import { parseConfig } from "../src/config.js";
import { jsonLogger } from "../src/log.js";
import { planRetention } from "../src/retention.js";
import type { Runtime } from "../src/runtime.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { writeDatabase } from "./helpers/db.js";
import { capturedLines } from "./helpers/log-capture.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let dir: string;
let runtime: Runtime;
const logLines = capturedLines("retention-store log");

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-retention-"));
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), level: "info" }));
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Run times: 03:00 daily from 2026-12-10, a gap 12-24…12-26, to 2027-01-05, plus 2027-01-05 15:00. */
function schedule(): string[] {
  const times: string[] = [];
  for (let t = Date.parse("2026-12-10T03:00:00Z"); t <= Date.parse("2027-01-05T03:00:00Z"); t += 86_400_000) {
    const iso = new Date(t).toISOString();
    if (!/^2026-12-2[4-6]/.test(iso)) times.push(iso);
  }
  return [...times, "2027-01-05T15:00:00.000Z"];
}

describe("GFS retention against a real store", () => {
  it("MAX_COUNT=2 KEEP_DAILY=3 KEEP_WEEKLY=2 KEEP_MONTHLY=2 over a month across a year end", async () => {
    const path = join(dir, "gfs.db");
    await writeDatabase(path, { rows: 5 });
    const foreign = ["backups/gfs/notes.txt", "backups/gfs/gfs-2026-12-01T00-00-00-000Z-abcdef.sqlite.gz.bak"];
    for (const Key of foreign) await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key, Body: "not ours" }));

    // The clock reads the simulated time plus the real time elapsed since it was set.
    let base = 0;
    let setAt = 0;
    const clocked: Runtime = { ...runtime, now: () => new Date(base + (Date.now() - setAt)) };
    const config = parseConfig(
      s3.env({ BACKUP_SOURCE: path, BACKUP_NAME: "gfs", MAX_COUNT: "2", KEEP_DAILY: "3", KEEP_WEEKLY: "2", KEEP_MONTHLY: "2" }),
      { maxBytes: NODE_MAX_BYTES },
    );
    expect(config.keep).toEqual({ daily: 3, weekly: 2, monthly: 2 });
    const store = createS3Store(config.s3);
    const source = createSource(config.source, { files: nodeFiles }, { readAttempts: config.readAttempts });
    const runner = createBackupRunner({ config, runtime: clocked, store, source });

    const manifests: Manifest[] = [];
    for (const time of schedule()) {
      base = Date.parse(time);
      setAt = Date.now();
      const m = await runner.run();
      expect(m.pruneError).toBeUndefined();
      manifests.push(m);
    }
    expect(manifests).toHaveLength(25);

    const left = (await s3.keys("backups/gfs/")).filter((k) => !foreign.includes(k));
    const minutes = left.map((k) => /gfs-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2})/.exec(k)![1]).sort().reverse();
    // last 2: 01-05 15:00, 01-05 03:00; daily 3: 01-05, 01-04, 01-03; weekly 2: 2027-W01 (01-05),
    // 2026-W53 (12-28…01-03 → 01-03); monthly 2: January (01-05 15:00), December (12-31).
    expect(minutes).toEqual(["2027-01-05T15-00", "2027-01-05T03-00", "2027-01-04T03-00", "2027-01-03T03-00", "2026-12-31T03-00"]);
    expect(await s3.keys("backups/gfs/")).toEqual(expect.arrayContaining(foreign));

    // Pruning run by run ends where one plan over the whole history does.
    const all = manifests.map((m) => m.key);
    const once = planRetention({ prefix: "backups/", name: "gfs", keys: all, maxCount: 2, keep: config.keep, protect: all.at(-1)! });
    expect(once.keep.map((k) => k.key).sort()).toEqual([...left].sort());
    // Every backup written was either kept or pruned by a run, exactly once.
    expect(manifests.flatMap((m) => m.pruned).sort()).toEqual(all.filter((k) => !left.includes(k)).sort());

    // The 03:00 run of 01-05 pruned 01-02 and logged what each rule kept.
    const pruned = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "pruned" && l.name === "gfs");
    const last = pruned.at(-1)!;
    expect(last.deleted).toEqual([manifests.find((m) => m.key.includes("2027-01-02T03-00"))!.key]);
    expect(last.keptBy).toEqual({ last: 2, daily: 3, weekly: 2, monthly: 2, protected: 1 });
    expect(last.kept).toBe(4);
  });
});
